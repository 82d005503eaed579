#!/usr/bin/env python3
"""Rebuilds the scanned-document fixtures in crates/exsearch-core/tests/fixtures
with Pillow and pypdf (pip install pillow pypdf): text rendered into images the way a scanner
or a fax would deliver it, with no text layer.

- scan.pdf: three image-only pages as Pillow's PDF writer stores them: a
  grayscale JPEG (DCTDecode), a 1-bit fax page (CCITT group 4) and a
  palette image (Pillow writes it hex-encoded; pypdf recompresses it with
  FlateDecode, as most producers store raw pixels).
- receipt.png: a photographed-receipt-like PNG.
- fax.tiff: a two-page group 4 TIFF.

Not run by CI: the outputs are committed (about 60 KB).
"""
import os
import textwrap
import zlib

from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter
from pypdf.generic import NameObject

ROOT = os.path.join(os.path.dirname(__file__), "..")
OUT = os.path.join(ROOT, "crates/exsearch-core/tests/fixtures")
FONT = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf", 36)


def page(text, mode):
    lines = textwrap.wrap(text, 48)
    image = Image.new("L", (1275, 120 + 56 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((80, 60 + 56 * i), line, font=FONT, fill=0)
    if mode == "1":
        return image.convert("1", dither=Image.Dither.NONE)
    if mode == "P":
        return image.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return image


def main():
    pages = [
        page("The lighthouse keeper recorded seventeen storms during the "
             "winter of 1893, each one in the same green ledger.", "L"),
        page("Copper kettles were traded for salted herring at the northern "
             "market every second Thursday.", "1"),
        page("Quarterly invoices must be approved by the treasurer before "
             "any payment leaves the cooperative.", "P"),
    ]
    scan = os.path.join(OUT, "scan.pdf")
    pages[0].save(scan, save_all=True, append_images=pages[1:], resolution=150)
    writer = PdfWriter(clone_from=PdfReader(scan))
    for pdf_page in writer.pages:
        for image in pdf_page["/Resources"]["/XObject"].values():
            image = image.get_object()
            if image.get("/Filter") == "/ASCIIHexDecode":
                raw = image.get_data()
                image[NameObject("/Filter")] = NameObject("/FlateDecode")
                image._data = zlib.compress(raw, 9)
    with open(scan, "wb") as f:
        writer.write(f)
    page("Receipt 4471: two notebooks and a fountain pen, paid in cash at "
         "the stationery shop on Mill Lane.", "L").save(
        os.path.join(OUT, "receipt.png"), optimize=True)
    fax = [
        page("Facsimile from the harbour office: the pilot boat is moored "
             "at the western quay.", "1"),
        page("The ferry timetable changes on the first Monday of April.", "1"),
    ]
    fax[0].save(os.path.join(OUT, "fax.tiff"), save_all=True,
                append_images=fax[1:], compression="group4")


if __name__ == "__main__":
    main()
