//! Compiles `proto/tributary/v1/*.proto` with protox (pure Rust, no system
//! `protoc`), then generates prost types and their pbjson serde impls; and
//! `proto/kpl/aggregated_record.proto` (KPL aggregation, read by the reader),
//! which has no JSON form.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: `env!` would bake in the checkout that first compiled this
    // script, and a target directory shared by two clones would then read the other's files.
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = ["tributary/v1/source.proto", "tributary/v1/commit.proto", "kpl/aggregated_record.proto"];
    for file in &files {
        println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    }

    let descriptors = protox::compile(files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("tributary_descriptor.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&descriptors))?;

    prost_build::Config::new()
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        // Sub-record payloads stay slices of the aggregated record: no copy per sub-record.
        .bytes([".kpl"])
        // A secret's value must not print: its Debug is written by hand (lib.rs).
        .skip_debug([".tributary.v1.Secret", ".tributary.v1.Secret.value"])
        .compile_fds(descriptors)?;

    let descriptor_set = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_set)?
        .preserve_proto_field_names()
        .build(&[".tributary"])?;
    Ok(())
}
