"""A self-contained HTML report: sections of text, tables, code and pictures.

    report = Report("tinygrad_opt demo")
    s = report.section("Optimizer race", "Same start, same budget.")
    s.image("runs/demo/race.png", "Rosenbrock from (-1.2, 1)")
    s.table(["optimizer", "steps"], [["adam", 120], ["bfgs", 36]])
    report.write("runs/demo/report.html")

Pictures are embedded as base64 ``data:`` URIs (PNG, GIF, JPEG and SVG), so the
one file opens anywhere, offline, and can be mailed around. All text is
HTML-escaped; the page uses no script and no external style sheet.
"""

import base64
import html
import os
import time

__all__ = ["MIME", "Report", "Section"]

MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
        ".svg": "image/svg+xml"}

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #446; padding-bottom: .3em; }
h2 { margin-top: 2em; color: #335; border-bottom: 1px solid #ccd; }
figure { margin: 1em 0; text-align: center; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .9em; color: #555; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ccd; padding: .25em .6em; text-align: right; }
th { background: #eef; }
td:first-child, th:first-child { text-align: left; }
pre { background: #f6f6fa; padding: .8em; overflow-x: auto; font-size: .85em; }
nav ul { columns: 2; }
.note { color: #555; font-size: .9em; }
"""


class Section:
    """One ``<section>`` of the report: call its methods in reading order."""

    def __init__(self, title, anchor):
        self.title, self.anchor = title, anchor
        self.parts = []

    def text(self, paragraph):
        """A paragraph (escaped)."""
        self.parts.append(f"<p>{html.escape(str(paragraph))}</p>")
        return self

    def note(self, paragraph):
        """A small grey paragraph (escaped)."""
        self.parts.append(f'<p class="note">{html.escape(str(paragraph))}</p>')
        return self

    def image(self, path, caption=None, width=None):
        """Embed the picture at ``path`` as a data URI (the file must exist)."""
        suffix = os.path.splitext(os.fspath(path))[1].lower()
        if suffix not in MIME:
            raise ValueError(f"Report.image: {path} is not one of "
                             f"{', '.join(MIME)}; save the picture as PNG, GIF, JPEG or SVG.")
        with open(path, "rb") as handle:
            data = base64.b64encode(handle.read()).decode("ascii")
        alt = html.escape(caption or os.path.basename(os.fspath(path)), quote=True)
        style = f' style="width:{int(width)}px"' if width else ""
        figure = [f'<figure><img src="data:{MIME[suffix]};base64,{data}" alt="{alt}"{style}>']
        if caption:
            figure.append(f"<figcaption>{html.escape(caption)}</figcaption>")
        figure.append("</figure>")
        self.parts.append("".join(figure))
        return self

    def table(self, head, rows, caption=None):
        """A table of ``head`` (column names) and ``rows`` (lists of cells)."""
        out = ["<table>"]
        if caption:
            out.append(f"<caption>{html.escape(caption)}</caption>")
        out.append("<thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
                   + "</tr></thead><tbody>")
        for row in rows:
            out.append("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row)
                       + "</tr>")
        out.append("</tbody></table>")
        self.parts.append("".join(out))
        return self

    def raw(self, fragment):
        """HTML made by the library itself, as is (tg.draw.html_figure's SVG figure)."""
        self.parts.append(fragment)
        return self

    def pre(self, text):
        """Preformatted text (a terminal table, DOT source)."""
        self.parts.append(f"<pre>{html.escape(str(text))}</pre>")
        return self

    def render(self):
        return (f'<section id="{self.anchor}"><h2>{html.escape(self.title)}</h2>'
                + "\n".join(self.parts) + "</section>")


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


class Report:
    """An HTML page of :class:`Section` objects with a table of contents."""

    def __init__(self, title, intro=None):
        self.title, self.intro = title, intro
        self.sections = []

    def section(self, title, intro=None):
        """A new section at the end; ``intro`` becomes its first paragraph."""
        section = Section(title, f"s{len(self.sections) + 1}")
        if intro:
            section.text(intro)
        self.sections.append(section)
        return section

    def html(self):
        """The whole page as a string."""
        toc = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>'
                      for s in self.sections)
        stamp = time.strftime("%Y-%m-%d %H:%M")
        parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
                 f"<title>{html.escape(self.title)}</title>", f"<style>{_STYLE}</style>",
                 "</head>", "<body>", f"<h1>{html.escape(self.title)}</h1>"]
        if self.intro:
            parts.append(f"<p>{html.escape(self.intro)}</p>")
        parts.append(f'<p class="note">Generated {stamp}.</p>')
        parts.append(f"<nav><ul>{toc}</ul></nav>")
        parts.extend(s.render() for s in self.sections)
        parts += ["</body>", "</html>"]
        return "\n".join(parts) + "\n"

    def write(self, path):
        """Write the page to ``path`` (through a temporary file); returns the path."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(self.html())
        os.replace(tmp, path)
        return path
