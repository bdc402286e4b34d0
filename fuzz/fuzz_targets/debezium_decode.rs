//! Any bytes as a Debezium JSON envelope, through the whole source (preproc
//! ref and eval, deletes, the rules): never a panic, and a batch that
//! accounts for it.
#![no_main]

mod common;

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use tributary_codec::{Decoder, SourceRules};

const RULES: &str = "    cdc: debezium\n    disorder: 1h\n    where: \"id % 3 <> 0 OR name IS NULL\"\n    sample: {rate: 0.7, using: [id]}\n    preproc:\n      name: {ref: \"customer[email]\"}\n      amount: {eval: \"CASE WHEN small > 0 THEN id * 2 ELSE id END\"}\n";

thread_local! {
    static SOURCE: (RefCell<Decoder>, RefCell<SourceRules>) = {
        let source = common::source("json", "      keys: [id]\n", RULES);
        let decoder = Decoder::new(&source, None).expect("compiles");
        (RefCell::new(decoder), RefCell::new(SourceRules::new(&source, None)))
    };
}

fuzz_target!(|data: &[u8]| {
    SOURCE.with(|(decoder, rules)| {
        let mut decoder = decoder.borrow_mut();
        common::check(&mut decoder, data);
        // Again, with the rules on the row (if any) it gave.
        let meta = tributary_codec::RecordMeta { shard_id: "s", sequence_number: "2", ..Default::default() };
        let accepted = decoder.decode(data, &meta).expect("no transient error without a registry");
        let out = decoder.flush().expect("flush never fails");
        let applied = rules.borrow_mut().apply(&out.batch).expect("rules never fail on decoded rows");
        assert_eq!(applied.outcomes.len(), usize::from(accepted));
    });
});
