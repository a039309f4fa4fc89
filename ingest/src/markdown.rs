//! Markdown: the file's own text, cut at headings (ATX and setext) into sections whose heading
//! path is the chain of enclosing headings.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use crate::document::{sections_from_headings, DocKind, Document};

pub(crate) fn read(text: String, file_name: &str) -> Document {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS;
    // (start offset, level, heading text)
    let mut headings: Vec<(usize, HeadingLevel, String)> = Vec::new();
    let mut current: Option<(usize, HeadingLevel, String)> = None;
    let mut front_title = None;
    let mut in_metadata = false;
    for (event, range) in Parser::new_ext(&text, options).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                current = Some((range.start, level, String::new()));
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((start, level, title)) = current.take() {
                    headings.push((
                        start,
                        level,
                        title.split_whitespace().collect::<Vec<_>>().join(" "),
                    ));
                }
            }
            Event::Start(Tag::MetadataBlock(_)) => in_metadata = true,
            Event::End(TagEnd::MetadataBlock(_)) => in_metadata = false,
            Event::Text(t) | Event::Code(t) if in_metadata => {
                front_title = t.lines().find_map(|l| {
                    l.strip_prefix("title:")
                        .map(|v| v.trim().trim_matches(['"', '\'']).to_owned())
                        .filter(|v| !v.is_empty())
                });
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, _, title)) = current.as_mut() {
                    title.push_str(&t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some((_, _, title)) = current.as_mut() {
                    title.push(' ');
                }
            }
            _ => {}
        }
    }

    let title = front_title
        .or_else(|| {
            headings
                .iter()
                .find(|h| h.1 == HeadingLevel::H1 && !h.2.is_empty())
                .map(|h| h.2.clone())
        })
        .unwrap_or_else(|| file_name.to_owned());

    let levels: Vec<(usize, usize, String)> = headings
        .into_iter()
        .map(|(start, level, heading)| (start, level as usize, heading))
        .collect();
    let sections = sections_from_headings(&text, &levels);
    Document::new(DocKind::Markdown, title, text, sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_become_paths_and_lines() {
        let text = "intro\n\n# Guide\n\ntext\n\n## Install\n\nsteps\n\nSetext\n------\n\nmore\n\n# Other\nx\n";
        let doc = read(text.to_owned(), "f.md");
        assert_eq!(doc.title, "Guide");
        let paths: Vec<_> = doc
            .sections
            .iter()
            .map(|s| (s.heading.join(" > "), s.first_line))
            .collect();
        assert_eq!(
            paths,
            [
                (String::new(), 1),
                ("Guide".into(), 3),
                ("Guide > Install".into(), 7),
                ("Guide > Setext".into(), 11),
                ("Other".into(), 16)
            ]
        );
        assert!(doc.text[doc.sections[2].range.clone()].starts_with("## Install"));
    }

    #[test]
    fn hash_in_code_block_is_not_a_heading() {
        let doc = read("# A\n\n```sh\n# comment\n```\n".to_owned(), "f.md");
        assert_eq!(doc.sections.len(), 1);
    }

    #[test]
    fn front_matter_title_wins() {
        let doc = read("---\ntitle: \"Nice\"\n---\n\n# H\n".to_owned(), "f.md");
        assert_eq!(doc.title, "Nice");
    }
}
