//! Any bytes as a JSON record: never a panic, and a batch that accounts for it.
#![no_main]

mod common;

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use tributary_codec::Decoder;

thread_local! {
    static DECODER: RefCell<Decoder> = RefCell::new(common::decoder("json"));
}

fuzz_target!(|data: &[u8]| {
    DECODER.with(|decoder| common::check(&mut decoder.borrow_mut(), data));
});
