"""benchmarks/readme_tables.py: the README's tables are the produced files' tables."""

from benchmarks import readme_tables


def test_a_stale_table_and_its_legend_are_replaced_and_the_prose_kept(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "x.md").write_text(
        "# x\n\nintro\n\n| model | r |\n|---|---|\n| MMSSL [a] | 0.09 |\n\n- MMSSL [a]: MMSSL with cl_rate=0\n\n## more\n")
    text = ("before\n<!-- table from results/x.md -->\n| model | r |\n|---|---|\n| MMSSL [a] | 0.07 |\n\n"
            "- MMSSL [a]: MMSSL with G_rate=0\n\nafter\n")
    new, changed = readme_tables.refresh(text, tmp_path)
    assert changed == ["results/x.md"]
    assert new == ("before\n<!-- table from results/x.md -->\n| model | r |\n|---|---|\n| MMSSL [a] | 0.09 |\n\n"
                   "- MMSSL [a]: MMSSL with cl_rate=0\n\nafter\n")
    assert readme_tables.refresh(new, tmp_path) == (new, [])


def test_the_readme_tables_equal_the_result_files():
    assert readme_tables.main(["--check"]) == 0


def test_a_marker_can_name_a_later_table(tmp_path):
    (tmp_path / "two.md").write_text("| a |\n|---|\n\ntext\n\n| b |\n|---|\n| 2 |\n")
    new, changed = readme_tables.refresh("<!-- table from two.md#2 -->\n| old |\n", tmp_path)
    assert new == "<!-- table from two.md#2 -->\n| b |\n|---|\n| 2 |\n" and changed == ["two.md#2"]
