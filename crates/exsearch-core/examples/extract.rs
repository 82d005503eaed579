//! Prints what the indexer reads from a file, section by section:
//! `cargo run -p exsearch-core --example extract -- FILE`.

use exsearch_core::corpus::{extract, DocumentKind};

fn main() {
    let path = std::env::args().nth(1).expect("usage: extract FILE");
    let path = std::path::Path::new(&path);
    let kind = DocumentKind::from_path(path).expect("a supported file type");
    let bytes = std::fs::read(path).expect("read");
    match extract(kind, &bytes) {
        Ok(doc) => {
            println!("title: {:?}", doc.title);
            for section in doc.sections {
                println!("--- page {:?}", section.page);
                println!("{}", section.text);
            }
        }
        Err(skip) => println!("skipped: {skip}"),
    }
}
