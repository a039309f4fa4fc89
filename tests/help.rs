//! Snapshots of `--help`: the command line is the interface scripts and users learn, so any
//! change to it shows up in review.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env_remove("CAIRN_KB")
        .env("COLUMNS", "100")
        .output()
        .expect("cairn runs");
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).expect("UTF-8 help")
}

#[test]
fn top_level_help() {
    insta::assert_snapshot!("help", help(&["--help"]));
}

#[test]
fn ask_help() {
    insta::assert_snapshot!("ask_help", help(&["ask", "--help"]));
}

#[test]
fn config_show_help() {
    insta::assert_snapshot!("config_show_help", help(&["config", "show", "--help"]));
}
