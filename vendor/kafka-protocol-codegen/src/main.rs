use failure::Error;
use std::fs;
use std::path::PathBuf;

pub mod generate_messages;

/// Sluice: generate from a directory of Kafka's message JSON into a directory.
fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let input = PathBuf::from(&args[1]);
    let output = &args[2];
    fs::create_dir_all(output)?;
    let mut input_file_paths = Vec::new();
    for file in fs::read_dir(input)? {
        let path = file?.path();
        if path.extension() == Some("json".as_ref()) {
            input_file_paths.push(path);
        }
    }
    generate_messages::run(output, input_file_paths)?;
    Ok(())
}
