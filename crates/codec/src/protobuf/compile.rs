//! `.proto` text to descriptors (protox, at run time), and where a message
//! sits in its file under each registry's numbering.

use std::collections::BTreeMap;

use prost_reflect::{DescriptorPool, FileDescriptor, MessageDescriptor};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

/// The name the schema's own file is compiled under (imports name theirs).
const MAIN_FILE: &str = "tributary_schema.proto";

/// Compiles `main` (importing `imports` and Google's well-known types): the pool and the main file.
pub(crate) fn compile(
    main: &str,
    imports: &BTreeMap<String, String>,
) -> Result<(DescriptorPool, FileDescriptor), String> {
    let mut resolver = ChainFileResolver::new();
    resolver.add(TextFiles { main: main.to_owned(), imports: imports.clone() });
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    compiler.open_file(MAIN_FILE).map_err(|e| format!("the .proto schema does not compile: {e}"))?;
    let pool = compiler.descriptor_pool();
    let file = pool.get_file_by_name(MAIN_FILE).ok_or_else(|| "internal: the compiled schema is missing".to_owned())?;
    Ok((pool, file))
}

/// The definition's files, as text by import name (the chain wants owned resolvers).
struct TextFiles {
    main: String,
    imports: BTreeMap<String, String>,
}

impl FileResolver for TextFiles {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        let text = if name == MAIN_FILE { Some(&self.main) } else { self.imports.get(name) };
        match text {
            Some(text) => File::from_source(name, text),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// The Confluent message-index path of `message` in `file`: its index among
/// the file's top-level messages, then among each parent's nested ones.
pub(crate) fn confluent_path(file: &FileDescriptor, message: &MessageDescriptor) -> Option<Vec<i32>> {
    if message.parent_file() != *file {
        return None;
    }
    let mut path = Vec::new();
    let mut current = message.clone();
    loop {
        match current.parent_message() {
            Some(parent) => {
                path.push(parent.child_messages().position(|m| m == current)?);
                current = parent;
            }
            None => {
                path.push(file.messages().position(|m| m == current)?);
                break;
            }
        }
    }
    path.reverse();
    path.into_iter().map(|i| i32::try_from(i).ok()).collect()
}

/// The Glue message index of `message` in `file`: its position among every
/// message of the file (nested ones and map entries included) sorted by full name.
pub(crate) fn glue_index(file: &FileDescriptor, message: &MessageDescriptor) -> Option<u64> {
    let mut names = Vec::new();
    let mut queue: std::collections::VecDeque<MessageDescriptor> = file.messages().collect();
    while let Some(next) = queue.pop_front() {
        names.push(next.full_name().to_owned());
        queue.extend(next.child_messages());
    }
    names.sort();
    names.iter().position(|name| name == message.full_name()).and_then(|i| u64::try_from(i).ok())
}

/// The Confluent message-index path of `message` in the schema `text` (fixtures, benchmarks).
pub fn confluent_message_path(text: &str, message: &str) -> Result<Vec<i32>, String> {
    let (pool, file) = compile(text, &BTreeMap::new())?;
    let descriptor = pool.get_message_by_name(message).ok_or_else(|| format!("no message `{message}`"))?;
    confluent_path(&file, &descriptor).ok_or_else(|| format!("`{message}` is not in the schema's file"))
}

/// The Glue message index of `message` in the schema `text` (fixtures, benchmarks).
pub fn glue_message_index(text: &str, message: &str) -> Result<u64, String> {
    let (pool, file) = compile(text, &BTreeMap::new())?;
    let descriptor = pool.get_message_by_name(message).ok_or_else(|| format!("no message `{message}`"))?;
    glue_index(&file, &descriptor).ok_or_else(|| format!("`{message}` is not in the schema's file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NESTED: &str = r#"
        syntax = "proto3";
        package p;
        message B {
          message C {}
          message A { message D {} }
        }
        message Z { map<string, int32> counts = 1; }
    "#;

    #[test]
    fn glue_indexes_count_every_message_sorted_by_full_name() {
        // p.B, p.B.A, p.B.A.D, p.B.C, p.Z, p.Z.CountsEntry
        assert_eq!(glue_message_index(NESTED, "p.B"), Ok(0));
        assert_eq!(glue_message_index(NESTED, "p.B.A"), Ok(1));
        assert_eq!(glue_message_index(NESTED, "p.B.A.D"), Ok(2));
        assert_eq!(glue_message_index(NESTED, "p.B.C"), Ok(3));
        assert_eq!(glue_message_index(NESTED, "p.Z"), Ok(4));
    }

    #[test]
    fn confluent_paths_walk_from_the_file_root() {
        assert_eq!(confluent_message_path(NESTED, "p.B"), Ok(vec![0]));
        assert_eq!(confluent_message_path(NESTED, "p.Z"), Ok(vec![1]));
        assert_eq!(confluent_message_path(NESTED, "p.B.A"), Ok(vec![0, 1]));
        assert_eq!(confluent_message_path(NESTED, "p.B.A.D"), Ok(vec![0, 1, 0]));
    }

    #[test]
    fn imports_resolve_from_the_definition_and_google() {
        let imports = BTreeMap::from([(
            "money.proto".to_owned(),
            "syntax = \"proto3\"; package m; message Money { int64 cents = 1; }".to_owned(),
        )]);
        let main = "syntax = \"proto3\"; import \"money.proto\"; import \"google/protobuf/timestamp.proto\";
                    message Order { m.Money total = 1; google.protobuf.Timestamp at = 2; }";
        let (pool, _) = compile(main, &imports).expect("compiles");
        assert!(pool.get_message_by_name("Order").is_some());
        let error = compile(main, &BTreeMap::new()).expect_err("money.proto is missing");
        assert!(error.contains("money.proto"), "{error}");
        assert!(compile("syntax = \"proto3\"; message {", &BTreeMap::new()).is_err());
    }
}
