//! GQA (testdev-balanced), scored as lmms-eval's `gqa` task: exact match after lower-casing and
//! deleting ASCII punctuation (`exact_match_hf_evaluate(ignore_case, ignore_punctuation)`, numpy
//! string functions), after the reply post-processing of [`crate::pipeline`].
//!
//! Data as on the Hub (lmms-lab GQA): `testdev_balanced_instructions/testdev-*.parquet`
//! (`id, imageId, question, answer, …`) and `testdev_balanced_images/testdev-*.parquet`
//! (`id, image`), joined on `imageId`.

use std::collections::HashMap;
use std::path::Path;

use crate::EvalError;
use crate::item::{Gold, Item, ScoreTable};
use crate::media::Media;
use crate::rows::read_table_dir_split;

const POST_PROMPT: &str = "\nAnswer the question using a single word or phrase.";
const QUESTIONS: &str = "testdev_balanced_instructions";
const IMAGES: &str = "testdev_balanced_images";

/// Loads the questions and attaches their images.
pub fn load(dir: &Path) -> Result<Vec<Item>, EvalError> {
    let mut images: HashMap<String, Media> = HashMap::new();
    for row in read_table_dir_split(&dir.join(IMAGES), "testdev")? {
        images.insert(row.id_of("id")?, row.image("image", &dir.join(IMAGES))?);
    }
    let mut items = Vec::new();
    for row in read_table_dir_split(&dir.join(QUESTIONS), "testdev")? {
        let image_id = row.id_of("imageId")?;
        let media = images
            .get(&image_id)
            .cloned()
            .ok_or_else(|| row.bad("imageId", &format!("image {image_id:?} is not in {IMAGES}/")))?;
        items.push(Item {
            id: row.id_of("id")?,
            task: "gqa".into(),
            media: vec![media],
            prompt: format!("{}{POST_PROMPT}", row.str("question")?),
            options: Vec::new(),
            gold: Gold::Text(row.str("answer")?.to_string()),
            max_new_tokens: 16,
            extra: Default::default(),
        });
    }
    Ok(items)
}

/// `np.char.lower` on a one-element array, as numpy 2.x computes it: Python's `str.lower()`
/// (full mappings, final sigma), cut to the array's width, which is the input's length in code
/// points: `'İstanbul'` (8 code points) lowers to `"i\u{307}stanbul"` (9) and is stored as
/// `"i\u{307}stanbu"`.
pub fn np_lower(s: &str) -> String {
    let width = s.chars().count();
    s.to_lowercase().chars().take(width).collect()
}

/// `exact_match_hf_evaluate`'s normalisation with `ignore_case` and `ignore_punctuation`:
/// [`np_lower`], then every character of `string.punctuation` deleted.
pub fn normalize(s: &str) -> String {
    np_lower(s).chars().filter(|c| !c.is_ascii_punctuation()).collect()
}

/// Exact-match accuracy ×100.
pub fn score(items: &[Item], preds: &[&str]) -> Result<ScoreTable, EvalError> {
    let hits = items.iter().zip(preds).filter(|(it, p)| normalize(p) == normalize(&it.gold.as_text())).count();
    let mut t = ScoreTable::new("gqa");
    t.push("overall", "exact_match", hits as f64 / items.len().max(1) as f64 * 100.0, items.len());
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_lower_is_per_code_point_and_keeps_the_width() {
        assert_eq!(np_lower("ΟΔΟΣ"), "οδος");
        assert_eq!(np_lower("İstanbul"), "i\u{307}stanbu");
        assert_eq!(normalize("T-Shirt!"), "tshirt");
        assert_ne!(normalize("İstanbul"), normalize("istanbul"));
    }
}
