"""Split scikit-learn's digits data set into train and test arrays (deterministic for a seed)."""
import argparse
import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, required=True)
parser.add_argument("--test-size", type=float, required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

digits = load_digits()
x = digits.data / 16.0  # pixel values 0..16 → 0..1
x_train, x_test, y_train, y_test = train_test_split(
    x, digits.target, test_size=args.test_size, random_state=args.seed, stratify=digits.target)
os.makedirs(args.out, exist_ok=True)
for name, array in [("x_train", x_train), ("x_test", x_test), ("y_train", y_train), ("y_test", y_test)]:
    np.save(os.path.join(args.out, name + ".npy"), array, allow_pickle=False)
print(f"prepare: {len(y_train)} training and {len(y_test)} test images")
