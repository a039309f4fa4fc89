//! Keys → named commands, as one table. The help screen and the README's key list are drawn
//! from this table, so what they say is what the keys do.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everywhere (the document view and help excepted, which take their own keys first).
    Global,
    /// The question box has focus.
    Input,
    /// The answer or the sources pane has focus.
    Panes,
    /// The sources pane has focus.
    Sources,
    /// The full document view is open.
    Document,
}

impl Scope {
    fn title(self) -> &'static str {
        match self {
            Scope::Global => "Anywhere",
            Scope::Input => "Question box",
            Scope::Panes => "Answer and sources panes",
            Scope::Sources => "Sources pane",
            Scope::Document => "Document view",
        }
    }
}

/// An editing operation on the question box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit {
    /// One character left.
    Left,
    /// One character right.
    Right,
    /// To the start.
    Home,
    /// To the end.
    End,
    /// One word left.
    WordLeft,
    /// One word right.
    WordRight,
    /// Delete the character before the cursor.
    DeleteBack,
    /// Delete the character under the cursor.
    DeleteForward,
    /// Delete the word before the cursor.
    DeleteWordBack,
    /// Delete the word after the cursor.
    DeleteWordForward,
    /// Delete to the start.
    KillToStart,
    /// Delete to the end.
    KillToEnd,
    /// Put back the text last deleted.
    Yank,
    /// Undo the last edit.
    Undo,
}

/// What a key does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Ask (or search for) the question in the box.
    Submit,
    /// Switch the box between asking the model and searching only.
    ToggleAskSearch,
    /// The previous question from history.
    HistoryPrev,
    /// The next question from history.
    HistoryNext,
    /// Search the history (again: an older match).
    HistorySearch,
    /// Edit the question.
    Edit(Edit),
    /// Focus the next pane.
    FocusNext,
    /// Focus the previous pane.
    FocusPrev,
    /// Select the next cited source.
    NextCitation,
    /// Select the previous cited source.
    PrevCitation,
    /// Copy the answer with its sources as Markdown.
    CopyAnswer,
    /// Copy the selected passage.
    CopyPassage,
    /// Copy the code of the answer (a command to run).
    CopyCode,
    /// Use the next installed model.
    CycleModel,
    /// Use the next retrieval mode.
    CycleMode,
    /// Ask the last question again with the current settings.
    Reask,
    /// Ask the last question again as typed, not as the follow-up it was taken for.
    ReaskAsTyped,
    /// Save the session as Markdown.
    Save,
    /// Cancel the running answer.
    Cancel,
    /// Cancel; pressed twice, quit.
    Interrupt,
    /// Quit (when the question box is empty).
    Quit,
    /// Show or hide the help.
    Help,
    /// Open the selected source's document around the passage.
    OpenDocument,
    /// Open the selected source's file in `$EDITOR` (or `$PAGER`) at its line.
    OpenEditor,
    /// Scroll or move the selection up.
    Up,
    /// Scroll or move the selection down.
    Down,
    /// Scroll up a page.
    PageUp,
    /// Scroll down a page.
    PageDown,
    /// To the top.
    Top,
    /// To the bottom.
    Bottom,
    /// Close the document view.
    Close,
}

/// A key with its modifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// The key.
    pub code: KeyCode,
    /// Ctrl, Alt, Shift.
    pub mods: KeyModifiers,
}

const fn key(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::NONE,
    }
}
const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::CONTROL,
    }
}
const fn alt(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::ALT,
    }
}
const fn ctrl_key(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::CONTROL,
    }
}
const fn ch(c: char) -> Key {
    key(KeyCode::Char(c))
}

/// One row of the keymap.
pub struct Binding {
    /// Where it applies.
    pub scope: Scope,
    /// The keys (the first is the one hints show).
    pub keys: &'static [Key],
    /// What they do.
    pub command: Command,
    /// The help line.
    pub help: &'static str,
}

use Command as C;
use Scope as S;

/// The keymap.
pub static KEYMAP: &[Binding] = &[
    Binding {
        scope: S::Global,
        keys: &[ctrl('c')],
        command: C::Interrupt,
        help: "cancel the answer; press again to quit",
    },
    Binding {
        scope: S::Global,
        keys: &[key(KeyCode::Esc)],
        command: C::Cancel,
        help: "cancel the running answer (the part written is kept)",
    },
    Binding {
        scope: S::Global,
        keys: &[key(KeyCode::Tab)],
        command: C::FocusNext,
        help: "focus the next pane",
    },
    Binding {
        scope: S::Global,
        keys: &[key(KeyCode::BackTab)],
        command: C::FocusPrev,
        help: "focus the previous pane",
    },
    Binding {
        scope: S::Global,
        keys: &[ctrl('t')],
        command: C::ToggleAskSearch,
        help: "switch between ask (answer with the model) and search (passages only)",
    },
    Binding {
        scope: S::Global,
        keys: &[key(KeyCode::PageUp)],
        command: C::PageUp,
        help: "scroll the focused pane up a page",
    },
    Binding {
        scope: S::Global,
        keys: &[key(KeyCode::PageDown)],
        command: C::PageDown,
        help: "scroll the focused pane down a page",
    },
    Binding {
        scope: S::Global,
        keys: &[key(KeyCode::F(1))],
        command: C::Help,
        help: "help",
    },
    Binding {
        scope: S::Input,
        keys: &[key(KeyCode::Enter)],
        command: C::Submit,
        help: "ask the question (or search, in search mode)",
    },
    Binding {
        scope: S::Input,
        keys: &[key(KeyCode::Up)],
        command: C::HistoryPrev,
        help: "previous question from history",
    },
    Binding {
        scope: S::Input,
        keys: &[key(KeyCode::Down)],
        command: C::HistoryNext,
        help: "next question from history",
    },
    Binding {
        scope: S::Input,
        keys: &[ctrl('r')],
        command: C::HistorySearch,
        help: "search the history (again: older match; Enter takes it, Esc leaves)",
    },
    Binding {
        scope: S::Input,
        keys: &[key(KeyCode::Left), ctrl('b')],
        command: C::Edit(Edit::Left),
        help: "cursor left",
    },
    Binding {
        scope: S::Input,
        keys: &[key(KeyCode::Right), ctrl('f')],
        command: C::Edit(Edit::Right),
        help: "cursor right",
    },
    Binding {
        scope: S::Input,
        keys: &[key(KeyCode::Home), ctrl('a')],
        command: C::Edit(Edit::Home),
        help: "to the start",
    },
    Binding {
        scope: S::Input,
        keys: &[key(KeyCode::End), ctrl('e')],
        command: C::Edit(Edit::End),
        help: "to the end",
    },
    Binding {
        scope: S::Input,
        keys: &[alt(KeyCode::Char('b')), ctrl_key(KeyCode::Left)],
        command: C::Edit(Edit::WordLeft),
        help: "one word left",
    },
    Binding {
        scope: S::Input,
        keys: &[alt(KeyCode::Char('f')), ctrl_key(KeyCode::Right)],
        command: C::Edit(Edit::WordRight),
        help: "one word right",
    },
    Binding {
        scope: S::Input,
        keys: &[key(KeyCode::Backspace), ctrl('h')],
        command: C::Edit(Edit::DeleteBack),
        help: "delete the character before the cursor",
    },
    Binding {
        scope: S::Input,
        keys: &[key(KeyCode::Delete), ctrl('d')],
        command: C::Edit(Edit::DeleteForward),
        help: "delete the character under the cursor",
    },
    Binding {
        scope: S::Input,
        keys: &[
            ctrl('w'),
            alt(KeyCode::Backspace),
            ctrl_key(KeyCode::Backspace),
        ],
        command: C::Edit(Edit::DeleteWordBack),
        help: "delete the word before the cursor",
    },
    Binding {
        scope: S::Input,
        keys: &[alt(KeyCode::Char('d')), ctrl_key(KeyCode::Delete)],
        command: C::Edit(Edit::DeleteWordForward),
        help: "delete the word after the cursor",
    },
    Binding {
        scope: S::Input,
        keys: &[ctrl('u')],
        command: C::Edit(Edit::KillToStart),
        help: "delete to the start",
    },
    Binding {
        scope: S::Input,
        keys: &[ctrl('k')],
        command: C::Edit(Edit::KillToEnd),
        help: "delete to the end",
    },
    Binding {
        scope: S::Input,
        keys: &[ctrl('y')],
        command: C::Edit(Edit::Yank),
        help: "put back the text last deleted",
    },
    Binding {
        scope: S::Input,
        keys: &[ctrl('z')],
        command: C::Edit(Edit::Undo),
        help: "undo",
    },
    Binding {
        scope: S::Panes,
        keys: &[ch('q')],
        command: C::Quit,
        help: "quit (when the question box is empty)",
    },
    Binding {
        scope: S::Panes,
        keys: &[ch('?')],
        command: C::Help,
        help: "help",
    },
    Binding {
        scope: S::Panes,
        keys: &[ch('n')],
        command: C::NextCitation,
        help: "next cited source",
    },
    Binding {
        scope: S::Panes,
        keys: &[ch('p')],
        command: C::PrevCitation,
        help: "previous cited source",
    },
    Binding {
        scope: S::Panes,
        keys: &[ch('y')],
        command: C::CopyAnswer,
        help: "copy the answer and its sources as Markdown (OSC 52: works over SSH)",
    },
    Binding {
        scope: S::Panes,
        keys: &[ch('Y')],
        command: C::CopyPassage,
        help: "copy the selected passage",
    },
    Binding {
        scope: S::Panes,
        keys: &[ch('c')],
        command: C::CopyCode,
        help: "copy the code in the answer (a shell session's commands, without their `$ `)",
    },
    Binding {
        scope: S::Panes,
        keys: &[ch('m')],
        command: C::CycleModel,
        help: "next installed model (tiny, fast, default)",
    },
    Binding {
        scope: S::Panes,
        keys: &[ch('M')],
        command: C::CycleMode,
        help: "next retrieval mode (hybrid, bm25, dense)",
    },
    Binding {
        scope: S::Panes,
        keys: &[ch('r')],
        command: C::Reask,
        help: "ask the last question again with the current model and mode",
    },
    Binding {
        scope: S::Panes,
        keys: &[ch('R')],
        command: C::ReaskAsTyped,
        help: "ask the last question again as typed (when it was taken as a follow-up)",
    },
    Binding {
        scope: S::Panes,
        keys: &[ch('s')],
        command: C::Save,
        help: "save the session as Markdown",
    },
    Binding {
        scope: S::Panes,
        keys: &[key(KeyCode::Up), ch('k')],
        command: C::Up,
        help: "scroll up (sources: previous source)",
    },
    Binding {
        scope: S::Panes,
        keys: &[key(KeyCode::Down), ch('j')],
        command: C::Down,
        help: "scroll down (sources: next source)",
    },
    Binding {
        scope: S::Panes,
        keys: &[key(KeyCode::Home), ch('g')],
        command: C::Top,
        help: "to the top",
    },
    Binding {
        scope: S::Panes,
        keys: &[key(KeyCode::End), ch('G')],
        command: C::Bottom,
        help: "to the bottom",
    },
    Binding {
        scope: S::Sources,
        keys: &[key(KeyCode::Enter)],
        command: C::OpenDocument,
        help: "open the document around the passage, at the cited lines",
    },
    Binding {
        scope: S::Sources,
        keys: &[ch('o')],
        command: C::OpenEditor,
        help: "open the file in $EDITOR (or $PAGER) at the passage",
    },
    Binding {
        scope: S::Document,
        keys: &[key(KeyCode::Esc), ch('q')],
        command: C::Close,
        help: "close the document view",
    },
    Binding {
        scope: S::Document,
        keys: &[key(KeyCode::Up), ch('k')],
        command: C::Up,
        help: "scroll up",
    },
    Binding {
        scope: S::Document,
        keys: &[key(KeyCode::Down), ch('j')],
        command: C::Down,
        help: "scroll down",
    },
    Binding {
        scope: S::Document,
        keys: &[ch('o')],
        command: C::OpenEditor,
        help: "open the file in $EDITOR (or $PAGER) at the passage",
    },
];

/// Finds what `event` does in `scope` (Shift on a character is part of the character).
#[must_use]
pub fn lookup(scope: Scope, event: &KeyEvent) -> Option<Command> {
    let mut mods = event.modifiers;
    if matches!(event.code, KeyCode::Char(_) | KeyCode::BackTab) {
        mods.remove(KeyModifiers::SHIFT);
    }
    let code = match event.code {
        // Terminals report Ctrl-letter with the letter in either case.
        KeyCode::Char(c) if mods.contains(KeyModifiers::CONTROL) => {
            KeyCode::Char(c.to_ascii_lowercase())
        }
        c => c,
    };
    KEYMAP
        .iter()
        .filter(|b| b.scope == scope)
        .find(|b| b.keys.iter().any(|k| k.code == code && k.mods == mods))
        .map(|b| b.command)
}

/// How a key is written in help: `Ctrl-R`, `Alt-B`, `Shift-Tab`, `↑`.
#[must_use]
pub fn key_name(k: &Key) -> String {
    let base = match k.code {
        KeyCode::Char(' ') => "Space".to_owned(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::BackTab => return "Shift-Tab".into(),
        KeyCode::F(n) => format!("F{n}"),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::PageDown => "PgDn".into(),
        other => format!("{other:?}"),
    };
    let base = if base.chars().count() == 1 && !k.mods.is_empty() {
        base.to_uppercase()
    } else {
        base
    };
    if k.mods.contains(KeyModifiers::CONTROL) {
        format!("Ctrl-{base}")
    } else if k.mods.contains(KeyModifiers::ALT) {
        format!("Alt-{base}")
    } else {
        base
    }
}

/// The keys of one binding, as help writes them: `Ctrl-W / Alt-Backspace`.
pub fn keys_text(b: &Binding) -> String {
    b.keys.iter().map(key_name).collect::<Vec<_>>().join(" / ")
}

/// The sections of the help: a title and (keys, help) rows, in keymap order.
#[must_use]
pub fn sections() -> Vec<(&'static str, Vec<(String, &'static str)>)> {
    let order = [S::Global, S::Input, S::Panes, S::Sources, S::Document];
    order
        .iter()
        .map(|&scope| {
            let rows = KEYMAP
                .iter()
                .filter(|b| b.scope == scope)
                .map(|b| (keys_text(b), b.help))
                .collect();
            (scope.title(), rows)
        })
        .collect()
}

/// The key list as Markdown (the README's TUI section is this text).
#[must_use]
pub fn markdown() -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for (title, rows) in sections() {
        let _ = writeln!(out, "**{title}**\n\n| key | does |\n|---|---|");
        for (keys, help) in rows {
            let _ = writeln!(out, "| {} | {help} |", keys.replace('|', "\\|"));
        }
        out.push('\n');
    }
    out.trim_end().to_owned() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_means_one_thing_in_its_scope() {
        for (i, a) in KEYMAP.iter().enumerate() {
            for b in &KEYMAP[i + 1..] {
                if a.scope == b.scope {
                    for k in a.keys {
                        assert!(!b.keys.contains(k), "{} is bound twice", key_name(k));
                    }
                }
            }
        }
    }

    #[test]
    fn ctrl_letters_match_in_either_case_and_shift_is_part_of_a_character() {
        let ev = KeyEvent::new(KeyCode::Char('R'), KeyModifiers::CONTROL);
        assert_eq!(lookup(S::Input, &ev), Some(C::HistorySearch));
        let ev = KeyEvent::new(KeyCode::Char('Y'), KeyModifiers::SHIFT);
        assert_eq!(lookup(S::Panes, &ev), Some(C::CopyPassage));
        let ev = KeyEvent::new(KeyCode::Char('y'), KeyModifiers::NONE);
        assert_eq!(lookup(S::Panes, &ev), Some(C::CopyAnswer));
        assert_eq!(lookup(S::Input, &ev), None, "letters type in the box");
    }

    #[test]
    fn help_names_keys_readably() {
        assert_eq!(key_name(&ctrl('r')), "Ctrl-R");
        assert_eq!(key_name(&alt(KeyCode::Backspace)), "Alt-Backspace");
        assert_eq!(key_name(&key(KeyCode::BackTab)), "Shift-Tab");
        assert!(markdown().contains("| Ctrl-R | search the history"));
    }
}
