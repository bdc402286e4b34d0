//! The embedded Iceberg catalog's pointers: which metadata file is each
//! table's current one. A commit swaps the pointer only from the file it
//! was based on, so of two writers racing from one base exactly one wins.

use chrono::Utc;
use rusqlite::{OptionalExtension, params};

use crate::{Store, StoreError};

impl Store {
    /// This store's identity: random, made when the store was created.
    pub fn identity(&self) -> Result<String, StoreError> {
        let connection = self.reading();
        Ok(connection.query_row("SELECT id FROM store_identity", [], |row| row.get(0))?)
    }

    /// The current metadata file of table `name`, if the catalog has it.
    pub fn table_pointer(&self, name: &str) -> Result<Option<String>, StoreError> {
        let connection = self.reading();
        let found = connection
            .query_row("SELECT metadata_location FROM iceberg_tables WHERE name = ?1", [name], |row| row.get(0))
            .optional()?;
        Ok(found)
    }

    /// Points table `name` at `new` if it still points at `expected`
    /// (`None`: the table is not in the catalog yet); `false` when it does not.
    pub fn swap_table_pointer(&self, name: &str, expected: Option<&str>, new: &str) -> Result<bool, StoreError> {
        let connection = self.connection.lock();
        let now = Utc::now().timestamp_micros();
        let changed = match expected {
            None => connection.execute(
                "INSERT INTO iceberg_tables (name, metadata_location, updated_at_micros) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO NOTHING",
                params![name, new, now],
            )?,
            Some(expected) => connection.execute(
                "UPDATE iceberg_tables SET metadata_location = ?3, updated_at_micros = ?4
                 WHERE name = ?1 AND metadata_location = ?2",
                params![name, expected, new, now],
            )?,
        };
        Ok(changed == 1)
    }

    /// Points several tables at new metadata files at once, each only if it
    /// still points at its expected file; all or none. `false` when any moved.
    pub fn swap_table_pointers(&self, swaps: &[(&str, &str, &str)]) -> Result<bool, StoreError> {
        let mut connection = self.connection.lock();
        let transaction = connection.transaction()?;
        let now = Utc::now().timestamp_micros();
        for (name, expected, new) in swaps {
            let changed = transaction.execute(
                "UPDATE iceberg_tables SET metadata_location = ?3, updated_at_micros = ?4
                 WHERE name = ?1 AND metadata_location = ?2",
                params![name, expected, new, now],
            )?;
            if changed != 1 {
                return Ok(false);
            }
        }
        transaction.commit()?;
        Ok(true)
    }

    /// Every table the catalog has, by name, with its current metadata file.
    pub fn table_pointers(&self) -> Result<Vec<(String, String)>, StoreError> {
        let connection = self.reading();
        let mut statement = connection.prepare("SELECT name, metadata_location FROM iceberg_tables ORDER BY name")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pointer_moves_only_from_the_file_it_was_based_on() {
        let store = Store::open_in_memory().expect("store");
        assert_eq!(store.table_pointer("t").expect("read"), None);
        assert!(store.swap_table_pointer("t", None, "m1").expect("create"));
        assert!(!store.swap_table_pointer("t", None, "other").expect("create twice"), "a second create loses");
        assert!(store.swap_table_pointer("t", Some("m1"), "m2").expect("swap"));
        assert!(!store.swap_table_pointer("t", Some("m1"), "m3").expect("stale swap"), "a stale base loses");
        assert_eq!(store.table_pointer("t").expect("read").as_deref(), Some("m2"));
        assert_eq!(store.table_pointers().expect("list"), vec![("t".to_owned(), "m2".to_owned())]);
        assert!(store.swap_table_pointer("u", None, "u1").expect("create"));
        assert!(!store.swap_table_pointers(&[("t", "m2", "m3"), ("u", "stale", "u2")]).expect("swap"), "one moved");
        assert_eq!(store.table_pointer("t").expect("read").as_deref(), Some("m2"), "so neither swaps");
        assert!(store.swap_table_pointers(&[("t", "m2", "m3"), ("u", "u1", "u2")]).expect("swap"));
        assert_eq!(store.table_pointer("u").expect("read").as_deref(), Some("u2"));
    }
}
