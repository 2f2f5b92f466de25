//! The README's settings table is the one the binaries' `--help` is made from: a setting
//! added to the loader without its row here fails this test.

#[test]
fn the_readme_lists_every_setting() {
    let readme = include_str!("../README.md");
    let table = offline_sync_config::markdown_table();
    assert!(
        readme.contains(&table),
        "README.md must contain the settings table exactly as offline_sync_config::markdown_table() prints it:\n{table}"
    );
}
