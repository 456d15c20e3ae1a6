"""read_csv_text finds encoding problems, ragged rows and the file line of every record."""

from __future__ import annotations

from records.csv_read import read_csv_text, sniff_delimiter


def test_lines_count_the_header_blank_lines_and_quoted_line_breaks() -> None:
    raw = b'id,title,credits\nM1,Algebra,5\n\nM2,"Tables,\nkeys",7.5\r\nM3,Welding,10\n'
    table, problems = read_csv_text(raw)
    assert problems == [] and table is not None
    assert table.frame["id"].tolist() == ["M1", "M2", "M3"]
    assert table.frame["title"].tolist() == ["Algebra", "Tables,\nkeys", "Welding"]
    assert table.lines.tolist() == [2, 4, 6]


def test_every_ragged_row_is_reported_with_its_line() -> None:
    raw = b"a,b,c\n1,2,3\n4,5\n6,7,8\n9,10,11,12\n"
    table, problems = read_csv_text(raw)
    assert table is None
    assert [(p.line, p.reason) for p in problems] == [
        (3, "malformed row: 2 fields where the header has 3"),
        (5, "malformed row: 4 fields where the header has 3"),
    ]


def test_ragged_rows_are_found_in_quoted_files_too() -> None:
    _, problems = read_csv_text(b'a,b\n"x, y",1\n"z",2,3\n')
    assert [p.line for p in problems] == [3]


def test_non_utf8_bytes_are_reported_with_their_line() -> None:
    raw = "id,title\nM1,Algebra\nM2,Alg\xe8bre\n".encode("latin-1")
    table, problems = read_csv_text(raw)
    assert table is None
    assert problems[0].line == 3 and "not UTF-8" in problems[0].reason and "0xe8" in problems[0].reason


def test_a_bad_byte_after_a_byte_order_mark_is_named_as_it_is() -> None:
    raw = b"\xef\xbb\xbfid,title\r\nM1,Algebra\r\nM2,Alg\xe8bre\r\n"
    _, problems = read_csv_text(raw)
    assert problems[0].line == 3 and "byte 0xe8" in problems[0].reason


def test_the_delimiter_is_read_off_the_header() -> None:
    assert sniff_delimiter(b"student_id;module_id;term;grade\nL1;M1;2021-1;71,5\n") == ";"
    assert sniff_delimiter(b"\r\nstudent_id\tmodule_id\n") == "\t"
    assert sniff_delimiter(b'student_id,module_id,note\nL1,M1,"a;b"\n') == ","
    assert sniff_delimiter(b"student_id\nL1\n") == ","
    table, problems = read_csv_text(b'id;title\nM1;"Algebra; part 1"\n', ";")
    assert problems == [] and table is not None and table.frame["title"].tolist() == ["Algebra; part 1"]


def test_byte_order_mark_and_header_problems() -> None:
    table, problems = read_csv_text("\ufeffid,name\nC1,SQL\n".encode())
    assert problems == [] and table is not None and table.header == ["id", "name"]
    _, problems = read_csv_text(b"id,id,\n1,2,3\n")
    assert {p.reason for p in problems} == {"the header has an empty column name", "the header repeats id"}
    _, problems = read_csv_text(b"")
    assert problems[0].line == 1 and "empty" in problems[0].reason


def test_tab_delimited_files_take_quotes_literally() -> None:
    table, problems = read_csv_text(
        b'code\ttitle\n15-2051.00\tData "Scientists"\n', delimiter="\t", quoting=False
    )
    assert problems == [] and table is not None
    assert table.frame["title"].tolist() == ['Data "Scientists"']
