//! A check that a crate's modules import only down its layers.
//!
//! A crate lists its top-level modules in layers, lowest first. A module may import
//! (`crate::…`) modules of lower layers only: never one of its own layer, never one above.
//! Doc comments, line comments and the `#[cfg(test)]` module at the end of a file are not
//! read, since they import nothing the crate is built with.
//!
//! ```no_run
//! let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
//! let violations = socratic_core::testkit::layers::violations(
//!     &src,
//!     &[&["clock", "id"], &["store"], &["repository"]],
//! );
//! assert!(violations.is_empty(), "{violations:#?}");
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Every import of `src` (a crate's `src` folder) that runs sideways or up `layers`, and every
/// top-level module no layer lists, one line each, naming the file and both modules.
pub fn violations(src: &Path, layers: &[&[&str]]) -> Vec<String> {
    let layer_of: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(layer, modules)| modules.iter().map(move |m| (*m, layer)))
        .collect();
    let mut found = Vec::new();
    for file in rust_files(src) {
        let Some(module) = module_of(src, &file) else {
            continue;
        };
        let Some(&own) = layer_of.get(module.as_str()) else {
            found.push(format!(
                "{}: module {module} is in no layer",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for imported in imports(&text) {
            if imported == module {
                continue;
            }
            match layer_of.get(imported.as_str()) {
                Some(&layer) if layer < own => {}
                Some(&layer) => found.push(format!(
                    "{}: {module} (layer {own}) imports {imported} (layer {layer})",
                    file.display()
                )),
                None => found.push(format!(
                    "{}: {module} imports {imported}, which is in no layer",
                    file.display()
                )),
            }
        }
    }
    found
}

/// The top-level module a file belongs to: its own name, or its folder's; `None` for the
/// crate root.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_owned())
}

/// The modules a file's code names as `crate::module`, in order, once each.
fn imports(text: &str) -> Vec<String> {
    let mut modules = Vec::new();
    for line in text.lines() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && !modules.contains(&name) {
                modules.push(name);
            }
        }
    }
    modules
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_skip_comments_and_the_test_module() {
        let text = "//! see crate::api\nuse crate::store::Key;\n/// crate::report\nfn f() -> crate::id::RunId { todo!() }\nuse crate::store::Item;\n#[cfg(test)]\nmod tests { use crate::api; }\n";
        assert_eq!(imports(text), ["store", "id"]);
    }

    #[test]
    fn an_import_sideways_or_up_is_named() {
        let dir = std::env::temp_dir().join(format!("layers-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(dir.join("entity")).unwrap();
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text).unwrap();
        };
        write(
            "lib.rs",
            "pub mod id; pub mod entity; pub mod repository;\n",
        );
        write("id.rs", "pub struct RunId;\n");
        write(
            "entity/mod.rs",
            "use crate::id::RunId;\nuse crate::repository::X;\n",
        );
        write(
            "repository.rs",
            "use crate::entity::Run;\nuse crate::calibration::Y;\n",
        );
        let found = violations(&dir, &[&["id"], &["entity"], &["repository"]]);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].ends_with("entity (layer 1) imports repository (layer 2)"));
        assert!(found[1].ends_with("repository imports calibration, which is in no layer"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
