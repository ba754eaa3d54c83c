//! Named models: a zoo name (or an ONNX path) resolves to a model file and its card.

use std::path::{Path, PathBuf};

use crate::data::card::ModelFormat;
use crate::data::{ModelCard, repo_root};
use crate::error::{Error, Result};
use crate::model::{Graph, LoadOptions, load_onnx};

/// Model cards live here, one TOML per zoo name.
pub const CARDS_DIR: &str = "experiments/models";

/// Names of the models with a card.
pub fn names() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo_root().join(CARDS_DIR))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.path()
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Load an ONNX file; when its input has symbolic dimensions and no `--input-shape` was
/// given, the card's channels and size give them (batch 1; NHWC when the card says so).
fn load_with_card_shape(file: &Path, opts: &LoadOptions, card: &ModelCard) -> Result<Graph> {
    match load_onnx(file, opts) {
        Err(Error::InvalidModel(m)) if opts.input_shape.is_none() && m.contains("is symbolic") => {
            let [h, w] = card.size;
            let shape = if card.nhwc {
                vec![1, h, w, card.channels]
            } else {
                vec![1, card.channels, h, w]
            };
            load_onnx(
                file,
                &LoadOptions {
                    input_shape: Some(shape),
                    ..opts.clone()
                },
            )
        }
        other => other,
    }
}

/// Resolve `spec` (zoo name or ONNX path) to a loaded graph and its card. A path whose
/// file stem matches a zoo name uses that card (with a notice on stderr); any other path
/// gets a plain card: no dataset, pixels 0..255 unnormalised.
/// [`resolve`] with the preprocessing of a card file (`--card`): for an ONNX file the
/// zoo does not know, or to override a zoo model's card.
pub fn resolve_with_card(
    spec: &str,
    opts: &LoadOptions,
    card: Option<&Path>,
) -> Result<(Graph, ModelCard)> {
    let Some(card_path) = card else {
        return resolve(spec, opts);
    };
    let mut card = ModelCard::load(card_path)?;
    let file = if Path::new(spec).is_file() {
        PathBuf::from(spec)
    } else if !card.file.as_os_str().is_empty() {
        card_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&card.file)
    } else {
        return Err(Error::InvalidArg {
            arg: "card".into(),
            reason: format!(
                "{}: names no model file, and '{spec}' is not a file",
                card_path.display()
            ),
        });
    };
    card.file = file.clone();
    if card.name.is_empty() {
        card.name = spec.to_string();
    }
    let g = load_with_card_shape(&file, opts, &card)?;
    Ok((g, card))
}

pub fn resolve(spec: &str, opts: &LoadOptions) -> Result<(Graph, ModelCard)> {
    let root = repo_root();
    let stem = Path::new(spec)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(spec);
    let card_path = root.join(CARDS_DIR).join(format!("{stem}.toml"));
    let is_path = spec.ends_with(".onnx") || Path::new(spec).exists();
    if card_path.is_file() {
        let card = ModelCard::load(&card_path)?;
        if is_path {
            eprintln!(
                "notice: {spec} is named like zoo model '{stem}': it takes that card's dataset \
                 ('{}') and preprocessing ({})",
                card.dataset,
                card_path.display()
            );
        }
        let file = if is_path {
            PathBuf::from(spec)
        } else if card.cached {
            crate::data::cache_dir().join(&card.file)
        } else {
            root.join(&card.file)
        };
        if !file.exists() && card.cached {
            return Err(Error::Data {
                path: file.display().to_string(),
                reason: format!(
                    "model '{}' is not fetched yet: run scripts/fetch-assets.sh",
                    card.name
                ),
            });
        }
        let g = match card.format {
            ModelFormat::Onnx => load_with_card_shape(&file, opts, &card)?,
            ModelFormat::EfficientnetLitePth => {
                let sd = crate::model::pth::read_state_dict(&file)?;
                crate::model::efficientnet::build(&sd, card.size[0], &card.name)?
            }
        };
        return Ok((g, card));
    }
    if !is_path {
        return Err(Error::InvalidArg {
            arg: "model".into(),
            reason: format!(
                "'{spec}' is neither a file nor a known model ({})",
                names().join(", ")
            ),
        });
    }
    let g = load_onnx(Path::new(spec), opts)?;
    let card = ModelCard::plain(Path::new(spec), &g.input_shape);
    Ok((g, card))
}
