"""A tiny text-only PDF writer for the police evidence summary.

Hand-written rather than a dependency: the summary is plain lines of text in a standard font (Helvetica
needs no embedding), which is ~60 lines of PDF syntax, whereas reportlab or fpdf2 would bring a large
library (and fonttools) into a security-sensitive deployment for one page of text. Streams are left
uncompressed so the hashes stay greppable in the file itself.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

PAGE_WIDTH, PAGE_HEIGHT = 595, 842  # A4 in points
MARGIN = 50
FONT_SIZE = 10
LEADING = 14
WRAP_CHARS = 95
LINES_PER_PAGE = (PAGE_HEIGHT - 2 * MARGIN) // LEADING


def _escape(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _wrap(lines: Iterable[tuple[str, bool]]) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    for text, bold in lines:
        clean = "".join(ch if ch.isprintable() else " " for ch in text)
        wrapped = textwrap.wrap(clean, WRAP_CHARS, break_long_words=True, replace_whitespace=True) or [""]
        out.extend((part, bold) for part in wrapped)
    return out


def pdf_from_lines(*, title: str, lines: Iterable[tuple[str, bool]]) -> bytes:
    """Lay out (text, bold) lines on A4 pages and return the PDF file's bytes."""
    wrapped = _wrap(lines)
    pages = [wrapped[i : i + LINES_PER_PAGE] for i in range(0, len(wrapped), LINES_PER_PAGE)] or [[]]
    objects: list[bytes] = []  # object n is objects[n - 1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in once the page tree exists
    page_tree = add(b"")
    regular = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    bold = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    info = add(b"<< /Title (" + _escape(title) + b") /Producer (NTARS) >>")
    page_ids = []
    for number, page_lines in enumerate(pages, start=1):
        ops = [b"BT", b"%d TL" % LEADING, b"%d %d Td" % (MARGIN, PAGE_HEIGHT - MARGIN)]
        for text, is_bold in page_lines:
            ops.append(b"/%s %d Tf (%s) Tj T*" % (b"F2" if is_bold else b"F1", FONT_SIZE, _escape(text)))
        ops += [b"ET", b"BT /F1 8 Tf %d %d Td (Page %d of %d) Tj ET" % (MARGIN, MARGIN / 2, number, len(pages))]
        stream = b"\n".join(ops)
        content = add(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        page_ids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R "
                b"/Resources << /Font << /F1 %d 0 R /F2 %d 0 R >> >> >>"
                % (page_tree, PAGE_WIDTH, PAGE_HEIGHT, content, regular, bold)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % page_tree
    kids = b" ".join(b"%d 0 R" % pid for pid in page_ids)
    objects[page_tree - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_ids))

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, catalog, info, xref_at,
    )
    return bytes(out)
