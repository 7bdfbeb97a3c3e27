//! What the official pipelines do to a model's reply before the task's scorer sees it.
//!
//! The scorer functions of [`crate::vsibench`], [`crate::gqa`], … take the text that the task's
//! `process_results` receives. Between the model and that function the official harnesses do
//! more, and what they do changes scores (`"3\n"` or `" C"` score 0 raw and full marks after
//! `strip()`). [`Pipeline`] is that part, one per benchmark:
//!
//! * **lmms-eval 0.7.3** (GQA, MME, MMBench, VisualWebBench): the Qwen2-VL wrapper
//!   (`models/simple/qwen2_vl.py`, `generate_until`) cuts the decoded reply at the first of the
//!   task's `until` strings (the YAML's `generation_kwargs.until`, else the task config's
//!   `fewshot_delimiter` `"\n\n"`) and strips it; the task's filters (none of these YAMLs has a
//!   `filter_list`, so `take_first`) pass it on; the evaluator removes reasoning blocks with the
//!   CLI's default `--reasoning_tags` (`<think>…</think>`, `<analysis>…</analysis>`,
//!   `api/reasoning.py::strip_reasoning_tags`, which strips again); `Task.process_results`
//!   (`api/task.py`) strips once more before the task's own function.
//! * **thinking-in-space** (VSI-Bench, the benchmark's lmms-eval fork at commit 51e089c): its
//!   Qwen2-VL wrapper (`models/qwen2vl.py`) returns vLLM's text unchanged, and
//!   `Task.process_results` strips it.
//! * **BALROG**: the vLLM/OpenAI client (`client.py`) strips the completion; the agent then
//!   extracts the action ([`crate::balrog::extract_action`]).
//!
//! Python's `str.strip()` is [`crate::pyfmt::strip`] (Python's whitespace, which adds the
//! information separators U+001C–U+001F to Unicode's `White_Space`).

use crate::pyfmt::strip;

/// lmms-eval 0.7.3's default `--reasoning_tags`.
pub const LMMS_REASONING_TAGS: [(&str, &str); 2] = [("<think>", "</think>"), ("<analysis>", "</analysis>")];

/// lmms-eval's default stop string when a task's YAML gives none (`TaskConfig.fewshot_delimiter`).
pub const LMMS_DEFAULT_UNTIL: [&str; 1] = ["\n\n"];

/// The reply post-processing of one official pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pipeline {
    /// Stop strings: the reply is cut before the first occurrence of any of them.
    pub until: &'static [&'static str],
    /// Reasoning blocks removed after the stop strings (start tag, end tag).
    pub reasoning_tags: &'static [(&'static str, &'static str)],
    /// Where each step comes from (shown by `vldac eval inspect`).
    pub source: &'static str,
}

impl Pipeline {
    /// lmms-eval 0.7.3 with its Qwen2-VL wrapper, with a task's `until` strings.
    pub const fn lmms_eval(until: &'static [&'static str], source: &'static str) -> Self {
        Pipeline { until, reasoning_tags: &LMMS_REASONING_TAGS, source }
    }

    /// A pipeline that only strips the reply (thinking-in-space, BALROG's client).
    pub const fn strip_only(source: &'static str) -> Self {
        Pipeline { until: &[], reasoning_tags: &[], source }
    }

    /// The text the task's `process_results` receives for a raw decoded reply.
    pub fn apply(&self, reply: &str) -> String {
        let cut = strip(cut_at_until(reply, self.until));
        let text = if self.reasoning_tags.is_empty() {
            cut.to_string()
        } else {
            strip_reasoning_tags(cut, self.reasoning_tags)
        };
        strip(&text).to_string()
    }
}

/// The reply up to the earliest occurrence of any non-empty stop string.
pub fn cut_at_until<'a>(reply: &'a str, until: &[&str]) -> &'a str {
    let end = until.iter().filter(|t| !t.is_empty()).filter_map(|t| reply.find(t)).min().unwrap_or(reply.len());
    &reply[..end]
}

/// lmms-eval's `strip_reasoning_tags`: for each tag pair, remove `start … end` blocks while both
/// tags occur (an end tag is searched from its start tag on); if then only an end tag is left
/// (a template that pre-fills the start tag), keep what follows its last occurrence. The result
/// is stripped.
pub fn strip_reasoning_tags(text: &str, tags: &[(&str, &str)]) -> String {
    let mut result = text.to_string();
    for &(start_tag, end_tag) in tags {
        while result.contains(start_tag) && result.contains(end_tag) {
            let Some(start) = result.find(start_tag) else { break };
            let Some(end) = result[start..].find(end_tag).map(|e| start + e) else { break };
            result.replace_range(start..end + end_tag.len(), "");
        }
        if result.contains(end_tag)
            && !result.contains(start_tag)
            && let Some(p) = result.rfind(end_tag)
        {
            result = result[p + end_tag.len()..].to_string();
        }
    }
    strip(&result).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lmms_pipeline_cuts_strips_and_removes_reasoning() {
        let p = Pipeline::lmms_eval(&LMMS_DEFAULT_UNTIL, "");
        assert_eq!(p.apply(" C\n"), "C");
        assert_eq!(p.apply("Yes\n\nBecause the sky is blue."), "Yes");
        assert_eq!(p.apply("<think>hmm</think> B "), "B");
        assert_eq!(p.apply("reasoning…</think>\u{3000}A"), "A");
        // The stop string comes first: a reasoning block with an empty line is cut open.
        assert_eq!(p.apply("<think>a\n\nb</think>A"), "<think>a");
        assert_eq!(p.apply("</think> x <think>"), "</think> x <think>");
        assert_eq!(p.apply(""), "");
        let mm = Pipeline::lmms_eval(&["ASSISTANT:"], "");
        assert_eq!(mm.apply("A\n\nB ASSISTANT: C"), "A\n\nB");
    }

    #[test]
    fn reasoning_tags_follow_lmms_eval() {
        let t = &LMMS_REASONING_TAGS;
        assert_eq!(strip_reasoning_tags("<think>1</think>x<think>2</think>y", t), "xy");
        assert_eq!(strip_reasoning_tags("</think>a<think>b", t), "</think>a<think>b");
        assert_eq!(strip_reasoning_tags("a</think>b</think>c", t), "c");
        assert_eq!(strip_reasoning_tags("<analysis>z</analysis> D", t), "D");
    }

    #[test]
    fn strip_only_is_python_strip() {
        let p = Pipeline::strip_only("");
        assert_eq!(p.apply("\u{1c}\u{85} 3 \u{2029}"), "3");
        assert_eq!(p.apply("3\n\nmeters"), "3\n\nmeters");
    }
}
