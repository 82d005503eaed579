//! A QA file for the tests of `demo real`, in the CLI and in the app.

use std::path::Path;

use serde_json::json;

/// Questions whose answers a passage holds, in our JSONL format: "Where was
/// Ada born?" with Ada's page (supporting) and her city's (not).
pub fn small_qa(path: &Path, n: usize) {
    let names = [
        "Ada", "Bel", "Cyr", "Dov", "Eli", "Fen", "Gus", "Hal", "Ivo", "Jon", "Kai", "Lev", "Mo",
        "Ned",
    ];
    let cities = [
        "Velm", "Orsk", "Tarn", "Pell", "Ruse", "Sarn", "Ubel", "Wick", "Yarn", "Zell", "Aven",
        "Brig", "Cove", "Dale",
    ];
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let (name, city) = (names[i % names.len()], cities[i % cities.len()]);
            json!({
                "id": format!("q{i}"),
                "question": format!("Where was {name} born?"),
                "answers": [city],
                "contexts": [
                    {"title": name, "text": format!("{name} was a painter. {name} was born in {city}."), "supporting": true},
                    {"title": city, "text": format!("{city} is a town by a river."), "supporting": false},
                ],
            })
            .to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").expect("write questions");
}
