"""Helpers for the report tests: an HTML well-formedness checker and image decoding."""

import base64
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}
MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/gif": b"GIF8", "image/jpeg": b"\xff\xd8\xff"}


class Checker(HTMLParser):
    """Collects problems: an end tag that closes nothing open, tags left open, and the
    sources of the images."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.images, self.ids, self.links = [], [], [], set(), []
        self.doctype = False

    def handle_decl(self, decl):
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "a" and attrs.get("href", "").startswith("#"):
            self.links.append(attrs["href"][1:])
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append(f"</{tag}> at {self.getpos()} closes "
                               f"{self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()


def check_html(text):
    """(checker, problems): problems is empty for a well-formed page."""
    checker = Checker()
    checker.feed(text)
    checker.close()
    problems = list(checker.errors)
    if checker.stack:
        problems.append(f"left open: {checker.stack}")
    if not checker.doctype:
        problems.append("no <!DOCTYPE html>")
    problems += [f"link to missing #{a}" for a in checker.links if a not in checker.ids]
    return checker, problems


def decode_image(src):
    """(mime type, bytes) of a data URI; raises AssertionError if the bytes are not an
    image of that type."""
    assert src.startswith("data:"), f"not a data URI: {src[:40]}"
    head, _, payload = src.partition(",")
    mime = head[5:].split(";")[0]
    assert head.endswith(";base64"), head
    data = base64.b64decode(payload, validate=True)
    if mime == "image/svg+xml":
        assert b"<svg" in data[:2000], "SVG without <svg>"
    else:
        assert data.startswith(MAGIC[mime]), f"{mime} data does not start with its signature"
    return mime, data
