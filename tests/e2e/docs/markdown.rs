//! The examples in a markdown file: its fenced blocks, with the `docs-test` directives written
//! as HTML comments just before them.

use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};

/// A fenced block: where it starts, its language, its text and its directives.
#[derive(Debug)]
pub struct Block {
    pub line: usize,
    pub lang: String,
    pub text: String,
    pub directives: Vec<Directive>,
}

/// `<!-- docs-test: KIND: VALUE -->` before a block says how the test treats it.
#[derive(Debug, Clone)]
pub enum Directive {
    /// The block is not run, for this reason.
    Skip(String),
    /// The block's text is written to this file (appended when it exists).
    File(String),
    /// A shell command the reader is assumed to have run already, run before the block.
    Setup(String),
    /// A shell command run when the file's session ends (servers a block daemonized).
    Teardown(String),
    /// A peer the block talks to, started by the test: `registry`, `postgres` or `openai`.
    With(String),
}

impl Block {
    /// The block's commands: `sh` lines with their `\` continuations joined (comments and
    /// blank lines left out), or a `console` block's `$ ` lines, each with the output that
    /// follows it.
    pub fn commands(&self) -> Vec<(String, Vec<String>)> {
        let mut commands: Vec<(String, Vec<String>)> = Vec::new();
        let mut pending = String::new();
        for line in self.text.lines() {
            match self.lang.as_str() {
                "console" if !pending.is_empty() => match line.strip_suffix('\\') {
                    Some(head) => pending.push_str(head),
                    None => {
                        pending.push_str(line);
                        commands.push((std::mem::take(&mut pending), Vec::new()));
                    }
                },
                "console" => match line.strip_prefix("$ ") {
                    Some(command) => match command.strip_suffix('\\') {
                        Some(head) => pending.push_str(head),
                        None => commands.push((command.to_string(), Vec::new())),
                    },
                    None if line.trim().is_empty() => {}
                    None => match commands.last_mut() {
                        Some((_, expected)) => expected.push(line.to_string()),
                        None => panic!("line {}: output before any `$ ` command", self.line),
                    },
                },
                _ => {
                    let trimmed = line.trim();
                    if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
                        continue;
                    }
                    match line.strip_suffix('\\') {
                        Some(head) => pending.push_str(head),
                        None => {
                            pending.push_str(line);
                            commands.push((std::mem::take(&mut pending), Vec::new()));
                        }
                    }
                }
            }
        }
        assert!(
            pending.is_empty(),
            "line {}: a `\\` ends the block",
            self.line
        );
        commands
    }
}

/// The fenced blocks of `markdown`, in order.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let line_of = |offset: usize| markdown[..offset].matches('\n').count() + 1;
    let mut blocks = Vec::new();
    let mut directives = Vec::new();
    let mut open: Option<Block> = None;
    for (event, range) in Parser::new(markdown).into_offset_iter() {
        match event {
            Event::Html(html) => directives.extend(parse_directives(&html)),
            Event::Start(Tag::CodeBlock(kind)) => {
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => {
                        info.split_whitespace().next().unwrap_or("").into()
                    }
                    CodeBlockKind::Indented => "indented".into(),
                };
                open = Some(Block {
                    line: line_of(range.start),
                    lang,
                    text: String::new(),
                    directives: std::mem::take(&mut directives),
                });
            }
            Event::Text(text) => match open.as_mut() {
                Some(block) => block.text.push_str(&text),
                None => directives.clear(),
            },
            Event::End(TagEnd::CodeBlock) => blocks.extend(open.take()),
            _ => {}
        }
    }
    blocks
}

/// The directives in one HTML comment (one per line).
fn parse_directives(html: &str) -> Vec<Directive> {
    html.lines()
        .filter_map(|line| {
            let line = line
                .trim()
                .trim_start_matches("<!--")
                .trim_end_matches("-->")
                .trim();
            let rest = line.strip_prefix("docs-test:")?.trim();
            let (kind, value) = rest.split_once(':').unwrap_or((rest, ""));
            let value = value.trim().to_string();
            Some(match kind.trim() {
                "skip" => Directive::Skip(value),
                "file" => Directive::File(value),
                "setup" => Directive::Setup(value),
                "teardown" => Directive::Teardown(value),
                "with" => Directive::With(value),
                other => panic!("unknown docs-test directive `{other}` in {line:?}"),
            })
        })
        .collect()
}

#[test]
fn blocks_carry_their_directives_and_commands() {
    let markdown = "Intro\n\n<!-- docs-test: setup: mkdir x\ndocs-test: with: postgres -->\n\
                    ```sh\n# a comment\nbaton a \\\n  --b\nbaton c\n```\n\ntext\n\n\
                    ```console\n$ baton d\n{\"x\": 1}\n```\n";
    let blocks = blocks(markdown);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].line, 5);
    assert!(
        matches!(&blocks[0].directives[..], [Directive::Setup(s), Directive::With(w)]
        if s == "mkdir x" && w == "postgres")
    );
    let commands: Vec<String> = blocks[0].commands().into_iter().map(|c| c.0).collect();
    assert_eq!(commands, ["baton a   --b", "baton c"]);
    assert!(blocks[1].directives.is_empty());
    assert_eq!(
        blocks[1].commands(),
        [("baton d".to_string(), vec!["{\"x\": 1}".to_string()])]
    );
}
