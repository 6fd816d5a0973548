#!/usr/bin/env python3
"""Import bounds benchmark (issue 13): the server's peak RSS and answer for hostile and large
uploads, one fresh server (release build, SQLite) per file so each peak is its own:
- corner.xlsx: cells at A1 and XFD1048576 (5 KB; calamine's dense grid would be 549 GB);
- sparse.xlsx: a 1000 x 20,000 bounding box holding four cells (the grid: 20 M cells);
- shared.xlsx: one 400 MB shared string, deflated to ~400 KB;
- big.xlsx: 200,000 rows x 10 typed columns (written by `sheetgpt convert`);
- odsbomb.ods: a million rows of a thousand numbers in a few hundred bytes.

Usage: python3 bench/imports.py [--rows 200000]
Set SHEETGPT_BIN to measure another build (e.g. an older one) with the same files.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tables import BIN, ROOT, call, free_port, status_kib, write_csv  # noqa: E402

NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"


def xlsx(path, rows_xml, shared_writer):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml",
                   '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                   '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                   '<Default Extension="xml" ContentType="application/xml"/></Types>')
        z.writestr("_rels/.rels", f'<Relationships xmlns="{PKG}"><Relationship Id="rId1" '
                   f'Type="{REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
        z.writestr("xl/workbook.xml", f'<workbook xmlns="{NS}" xmlns:r="{REL}"><sheets>'
                   '<sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels", f'<Relationships xmlns="{PKG}"><Relationship Id="rId1" '
                   f'Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>')
        z.writestr("xl/worksheets/sheet1.xml",
                   f'<worksheet xmlns="{NS}"><sheetData>{rows_xml}</sheetData></worksheet>')
        with z.open("xl/sharedStrings.xml", "w", force_zip64=True) as f:
            shared_writer(f)


def strings(*items):
    def write(f):
        f.write(f'<sst xmlns="{NS}" uniqueCount="{len(items)}">'.encode())
        for s in items:
            f.write(f"<si><t>{s}</t></si>".encode())
        f.write(b"</sst>")
    return write


def c(ref, index):
    return f'<c r="{ref}" t="s"><v>{index}</v></c>'


def build(tmp, rows):
    files = {}
    p = os.path.join(tmp, "corner.xlsx")
    xlsx(p, f'<row r="1">{c("A1", 0)}</row><row r="1048576"><c r="XFD1048576"><v>1</v></c></row>',
         strings("name"))
    files["corner.xlsx"] = p
    p = os.path.join(tmp, "sparse.xlsx")
    xlsx(p, f'<row r="1">{c("A1", 0)}{c("ALL1", 1)}</row>'
            '<row r="20000"><c r="A20000"><v>1</v></c><c r="ALL20000"><v>2.5</v></c></row>',
         strings("first", "last"))
    files["sparse.xlsx"] = p

    def huge(f):
        f.write(f'<sst xmlns="{NS}" uniqueCount="1"><si><t>'.encode())
        chunk = b"a" * (1 << 20)
        for _ in range(400):
            f.write(chunk)
        f.write(b"</t></si></sst>")
    p = os.path.join(tmp, "shared.xlsx")
    xlsx(p, f'<row r="1">{c("A1", 0)}</row><row r="2">{c("A2", 0)}</row>', huge)
    files["shared.xlsx"] = p

    p = os.path.join(tmp, "odsbomb.ods")
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("META-INF/manifest.xml",
                   '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
                   '<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
                   '</manifest:manifest>')
        z.writestr("content.xml",
                   '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
                   'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
                   'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"><office:body><office:spreadsheet>'
                   '<table:table table:name="S"><table:table-row table:number-rows-repeated="1000000">'
                   '<table:table-cell office:value-type="float" office:value="1" table:number-columns-repeated="1000">'
                   '<text:p>1</text:p></table:table-cell></table:table-row></table:table>'
                   '</office:spreadsheet></office:body></office:document-content>')
    files["odsbomb.ods"] = p

    csv_path = os.path.join(tmp, "big.csv")
    write_csv(csv_path, rows)
    p = os.path.join(tmp, "big.xlsx")
    subprocess.run([BIN, "convert", csv_path, p], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, SHEETGPT_DATA_DIR=os.path.join(tmp, "convert-data")))
    files["big.xlsx"] = p
    return files


def multipart(path, filename):
    import uuid
    boundary = uuid.uuid4().hex
    with open(path, "rb") as f:
        content = f.read()
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def measure(tmp, name, path):
    data_dir = os.path.join(tmp, "data-" + name)
    port = free_port()
    env = dict(os.environ, SHEETGPT_LISTEN=f"127.0.0.1:{port}", SHEETGPT_DATA_DIR=data_dir,
               SHEETGPT_LOG_LEVEL="warn")
    for k in ("SHEETGPT_DATABASE_URL", "SHEETGPT_BIN", "SHEETGPT_BENCH_NO_BUILD"):
        env.pop(k, None)
    proc = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            try:
                if call(port, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.01)
        creds = {"email": "bench@example.com", "password": "correct horse battery staple"}
        call(port, "POST", "/api/v1/auth/register", creds)
        token = call(port, "POST", "/api/v1/auth/login", creds)[1]["access_token"]
        body, ctype = multipart(path, name)
        before = status_kib(proc.pid, "VmRSS")
        started = time.perf_counter()
        try:
            status, answer = call(port, "POST", "/api/v1/tables/import", token=token,
                                  headers={"content-type": ctype}, raw=body)
            code = answer.get("code") if isinstance(answer, dict) else None
            rows = answer.get("row_count") if isinstance(answer, dict) else None
        except Exception as e:  # the process died: no answer
            status, code, rows = f"no answer ({type(e).__name__})", None, None
        secs = time.perf_counter() - started
        alive = proc.poll() is None
        peak = status_kib(proc.pid, "VmHWM") if alive else -1
        if alive:
            try:
                alive = call(port, "GET", "/readyz")[0] == 200
            except OSError:
                alive = False
        return dict(size=os.path.getsize(path), status=status, code=code, rows=rows, secs=secs,
                    before=before, peak=peak, alive=alive, exit=proc.poll())
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    args = ap.parse_args()
    if not os.environ.get("SHEETGPT_BENCH_NO_BUILD") and not os.environ.get("SHEETGPT_BIN"):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "sheetgpt"], cwd=ROOT, check=True)
    print(f"== SheetGPT import bounds ({BIN}) ==")
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in build(tmp, args.rows).items():
            r = measure(tmp, name, path)
            print(f"{name:12} {r['size']/1024:9.0f} KiB  -> {r['status']} {r['code'] or ''} rows={r['rows']} "
                  f"in {r['secs']:.2f} s; server RSS {r['before']/1024:.0f} -> peak {r['peak']/1024:.0f} MiB; "
                  f"still serving: {r['alive']} (exit {r['exit']})")


if __name__ == "__main__":
    sys.exit(main())
