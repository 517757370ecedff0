//! Regenerates `schemas/json/*.schema.json` from the types.

fn main() -> std::io::Result<()> {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("json");
    std::fs::create_dir_all(&folder)?;
    for (file, document) in taskflow_schemas::json_schema::documents() {
        let text = serde_json::to_string_pretty(&document).expect("a schema serializes") + "\n";
        std::fs::write(folder.join(&file), text)?;
        println!("wrote schemas/json/{file}");
    }
    Ok(())
}
