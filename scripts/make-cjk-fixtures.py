#!/usr/bin/env python3
"""Rebuilds the CJK PDF fixtures in crates/exsearch-core/tests/fixtures with
ReportLab and pypdf (pip install reportlab pypdf): text in fonts that name
a predefined CMap instead of embedding a font or a ToUnicode map, as
ReportLab, older Acrobat and many Chinese and Japanese producers write it.

- cjk-ucs2.pdf: Chinese in STSong-Light through UniGB-UCS2-H (ReportLab's
  own output).
- cjk-gbk.pdf: the same page with its strings re-encoded in GBK and the
  font's encoding set to GBK-EUC-H.
- cjk-sjis.pdf: Japanese in HeiseiMin-W3 through 90ms-RKSJ-H (Shift_JIS).

Not run by CI: the outputs are committed (a few KB each).
"""
import os
import re

from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

OUT = os.path.join(os.path.dirname(__file__), "..", "crates/exsearch-core/tests/fixtures")
LINES = {
    "zh": ["北京是中华人民共和国的首都。", "Beijing 2008 奥运会在北京举行。"],
    "ja": ["東京は日本の首都です。", "Tokyo 2020 オリンピック"],
}


def page(path, font, lines):
    pdfmetrics.registerFont(UnicodeCIDFont(font))
    c = canvas.Canvas(path, pageCompression=0)
    c.setFont(font, 14)
    for i, line in enumerate(lines):
        c.drawString(72, 750 - 30 * i, line)
    c.save()


ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def unescape(match):
    code = match.group(1)
    if code[:1].isdigit():
        return bytes([int(code, 8)])
    return ESCAPES.get(code, code)


def reencode(source, target, cmap, codec):
    """Rewrites every UCS-2 string shown in the page's CID font in `codec`,
    and names `cmap` as the font's encoding."""
    writer = PdfWriter(clone_from=PdfReader(source))
    pdf_page = writer.pages[0]
    for font in pdf_page["/Resources"]["/Font"].values():
        font = font.get_object()
        if font.get("/Subtype") == "/Type0":
            font[NameObject("/Encoding")] = NameObject("/" + cmap)
    contents = pdf_page["/Contents"].get_object()
    data = contents.get_data()

    def convert(match):
        raw = match.group(1)
        # Undo PDF literal-string escapes, then re-escape the new bytes.
        unescaped = re.sub(rb"\\([0-7]{1,3}|.)", unescape, raw, flags=re.S)
        text = unescaped.decode("utf-16-be")
        encoded = text.encode(codec)
        return b"(" + b"".join(b"\\%03o" % b for b in encoded) + b") Tj"

    data = re.sub(rb"\((.*?)\) Tj", convert, data, flags=re.S)
    contents.set_data(data)
    with open(target, "wb") as f:
        writer.write(f)


def main():
    ucs2 = os.path.join(OUT, "cjk-ucs2.pdf")
    page(ucs2, "STSong-Light", LINES["zh"])
    reencode(ucs2, os.path.join(OUT, "cjk-gbk.pdf"), "GBK-EUC-H", "gbk")
    ja = os.path.join(OUT, "cjk-ja-ucs2.pdf")
    page(ja, "HeiseiMin-W3", LINES["ja"])
    reencode(ja, os.path.join(OUT, "cjk-sjis.pdf"), "90ms-RKSJ-H", "cp932")
    os.remove(ja)


if __name__ == "__main__":
    main()
