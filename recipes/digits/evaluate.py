"""Evaluate the model on the held-out digits; write metrics.json for kiln's gates."""
import argparse
import json
import os
import pickle

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--data", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

with open(args.model, "rb") as f:
    model = pickle.load(f)
x = np.load(os.path.join(args.data, "x_test.npy"))
y = np.load(os.path.join(args.data, "y_test.npy"))
predicted = model.predict(x)
metrics = {
    "accuracy": round(float(accuracy_score(y, predicted)), 6),
    "f1_macro": round(float(f1_score(y, predicted, average="macro")), 6),
    "test_images": int(len(y)),
}
with open(args.out, "w") as f:
    json.dump(metrics, f, sort_keys=True, indent=2)
    f.write("\n")
print("evaluate: " + ", ".join(f"{k}={v}" for k, v in metrics.items()))
