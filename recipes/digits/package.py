"""Put the model, its metrics and a short model card into one release folder."""
import argparse
import json
import os
import shutil

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--metrics", required=True)
parser.add_argument("--C", type=float, required=True)
parser.add_argument("--gamma", type=float, required=True)
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

os.makedirs(args.out, exist_ok=True)
shutil.copyfile(args.model, os.path.join(args.out, "model.pkl"))
shutil.copyfile(args.metrics, os.path.join(args.out, "metrics.json"))
with open(args.metrics) as f:
    metrics = json.load(f)
card = f"""# digits classifier

A support-vector classifier (scikit-learn `SVC`, C={args.C}, gamma={args.gamma}) for 8×8
handwritten digits, trained on scikit-learn's digits data set split with seed {args.seed}.

| metric | value |
|---|---|
""" + "".join(f"| {k} | {v} |\n" for k, v in sorted(metrics.items())) + """
Built by kiln: `kiln verify` proves this folder's archive is the one its run record names.
"""
with open(os.path.join(args.out, "MODEL_CARD.md"), "w") as f:
    f.write(card)
print(f"package: {sorted(os.listdir(args.out))}")
