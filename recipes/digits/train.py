"""Train a support-vector classifier on the prepared digits."""
import argparse
import os
import pickle

import numpy as np
from sklearn.svm import SVC

parser = argparse.ArgumentParser()
parser.add_argument("--C", type=float, required=True)
parser.add_argument("--gamma", type=float, required=True)
parser.add_argument("--data", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

x = np.load(os.path.join(args.data, "x_train.npy"))
y = np.load(os.path.join(args.data, "y_train.npy"))
model = SVC(C=args.C, gamma=args.gamma).fit(x, y)
with open(args.out, "wb") as f:
    pickle.dump(model, f, protocol=4)
print(f"train: SVC(C={args.C}, gamma={args.gamma}), {len(model.support_)} support vectors")
