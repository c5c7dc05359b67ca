#!/usr/bin/env python3
"""Writes the committed seed corpora of the data-reader fuzz targets:
tests/fuzz/corpus/{npy,csv,idx,gzip}/. Standard library only; run once from
anywhere (python3 tests/fuzz/make_corpus.py) and commit what it writes. The
frontend and image seeds come from the tests' programs (scripts/fuzz.sh)."""
import gzip
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, mtime=0)


def npy(descr, shape, payload, version=1, fortran=False):
    dims = "".join(f"{n}, " for n in shape) if len(shape) == 1 else ", ".join(map(str, shape))
    head = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': ({dims}), }}"
    lenfmt, pre = ("<H", 10) if version == 1 else ("<I", 12)
    pad = (-(pre + len(head) + 1)) % 64
    head = (head + " " * pad + "\n").encode()
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack(lenfmt, len(head)) + head + payload


def idx(dims, payload):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def main():
    put("npy", "f32_2x3.npy", npy("<f4", (2, 3), struct.pack("<6f", 0, 1, -2, 3.5, 1e30, -0.0)))
    put("npy", "f64_scalar.npy", npy("<f8", (), struct.pack("<d", 3.25)))
    put("npy", "i32_4.npy", npy("<i4", (4,), struct.pack("<4i", 0, -1, 2**31 - 1, -2**31)))
    put("npy", "i64_2x2.npy", npy("<i8", (2, 2), struct.pack("<4q", 1, 2, 3, -4)))
    put("npy", "bool_3.npy", npy("|b1", (3,), bytes([1, 0, 1])))
    put("npy", "u8_2x2.npy", npy("|u1", (2, 2), bytes([0, 7, 128, 255])))
    put("npy", "empty_0x3.npy", npy("<f4", (0, 3), b""))
    put("npy", "v2_f32_3.npy", npy("<f4", (3,), struct.pack("<3f", 1, 2, 3), version=2))
    put("npy", "fortran_2x2.npy", npy("<f4", (2, 2), struct.pack("<4f", 1, 2, 3, 4), fortran=True))
    put("npy", "big_endian.npy", npy(">f4", (2,), struct.pack(">2f", 1, 2)))

    put("csv", "header.csv", b"x1,x2,label\n0.5,1e-3,0\n-2,3.25,1\n7,8,2\n")
    put("csv", "no_header.csv", b"1,2,3\n4,5,6\n")
    put("csv", "crlf_no_final_newline.csv", b"a,b\r\n1,2\r\n3,4")
    put("csv", "spaces_and_signs.csv", b" 1 , -2.5 ,+3\n4e2,5E-1,-0\n")
    put("csv", "nan_inf.csv", b"nan,inf,-inf\n1,2,3\n")
    put("csv", "ragged.csv", b"1,2,3\n4,5\n")
    put("csv", "one_column.csv", b"y\n1\n2\n3\n")
    put("csv", "empty_cells.csv", b"1,,3\n,5,6\n")

    put("idx", "labels_idx1", idx([5], bytes([0, 1, 9, 3, 255])))
    put("idx", "images_idx3", idx([2, 3, 3], bytes(range(18))))
    put("idx", "images_idx4", idx([2, 2, 1, 2], bytes(range(8))))
    put("idx", "labels_idx1.gz", gz(idx([5], bytes([0, 1, 9, 3, 255]))))
    put("idx", "images_idx3.gz", gz(idx([2, 3, 3], bytes(range(18)))))
    put("idx", "empty_images_idx3", idx([0, 28, 28], b""))

    put("gzip", "text.gz", gz(b"1,2,3\n4,5,6\n"))
    put("gzip", "empty.gz", gz(b""))
    put("gzip", "two_members.gz", gz(b"first member\n") + gz(b"second member\n"))
    put("gzip", "zero_padding.gz", gz(b"padded\n") + bytes(16))
    put("gzip", "repetitive.gz", gz(b"\x00" * 4096 + b"abc" * 500))
    put("gzip", "idx.gz", gz(idx([2, 3, 3], bytes(range(18)))))


if __name__ == "__main__":
    main()
