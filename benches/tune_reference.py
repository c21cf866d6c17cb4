#!/usr/bin/env python3
"""Reference for `anomaly tune` (benches/tune.sh): Optuna's TPE over the same search space and
budget, with PyTorch (the MLP) or XGBoost (gradient boosting) objectives of the same models.

  tune_reference.py --family mlp|gradient_boosting --nsl-kdd DIR [--trials 50] [--cv 3]
                    [--seed 42] [--pruner median|none] [--threads 2]

Data: KDDTrain+ only (KDDTest+ is never read), the preset's protocol: the 5 categories
(normal, DoS, Probe, R2L, U2R) with balanced class weights, difficulty dropped, numbers
quantile-scaled (scikit-learn's QuantileTransformer, 1,000 quantiles, uniform) and
protocol_type/service/flag one-hot, both fitted on each fold's training part. Stratified
3-fold cv (shuffled, seed 42). The objective: the mean over folds of the validation ROC AUC of
normal vs attack (1 − P(normal)).

MLP: Linear → ReLU → Dropout per hidden layer (the `mlp` family; no batch norm), Adam with L2
weight decay, cross-entropy with balanced weights, up to 100 epochs with the learning rate
times 0.1 every 30 (the preset's step scheduler, the default), stopping after 10 without a
better validation loss, keeping the best epoch's weights; each epoch reports the validation ROC AUC
to Optuna's MedianPruner (as `anomaly tune --pruner median`).
Gradient boosting: xgboost's hist booster (eta, max_depth, subsample, lambda,
min_child_weight as searched; 200 rounds, early stopping after 20 on the fold's validation
log-loss, 256 bins), no pruning.

Prints each trial, then `best <value> wall <seconds> s trials <n>`. Written for this benchmark.
"""
import argparse
import gzip
import os
import time

import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import OneHotEncoder, QuantileTransformer

COLUMNS = [
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land",
    "wrong_fragment", "urgent", "hot", "num_failed_logins", "logged_in", "num_compromised",
    "root_shell", "su_attempted", "num_root", "num_file_creations", "num_shells",
    "num_access_files", "num_outbound_cmds", "is_host_login", "is_guest_login", "count",
    "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate",
    "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate", "dst_host_count",
    "dst_host_srv_count", "dst_host_same_srv_rate", "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
    "label", "difficulty",
]
CATEGORICAL = ["protocol_type", "service", "flag"]
CATEGORY = {
    **dict.fromkeys("back land neptune pod smurf teardrop apache2 mailbomb processtable udpstorm".split(), "DoS"),
    **dict.fromkeys("ipsweep nmap portsweep satan mscan saint".split(), "Probe"),
    **dict.fromkeys(("ftp_write guess_passwd imap multihop phf spy warezclient warezmaster named "
                     "sendmail snmpgetattack snmpguess worm xlock xsnoop").split(), "R2L"),
    **dict.fromkeys("buffer_overflow loadmodule perl rootkit httptunnel ps sqlattack xterm".split(), "U2R"),
    "normal": "normal",
}
CLASSES = ["normal", "DoS", "Probe", "R2L", "U2R"]


def load(folder):
    for name in ("KDDTrain+.txt", "KDDTrain+.txt.gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as f:
                df = pd.read_csv(f, header=None, names=COLUMNS)
            y = df["label"].map(CATEGORY).map(CLASSES.index).to_numpy()
            return df.drop(columns=["label", "difficulty"]), y
    raise SystemExit(f"{folder}: no KDDTrain+.txt(.gz)")


def encode(train, val):
    numeric = [c for c in train.columns if c not in CATEGORICAL]
    q = QuantileTransformer(n_quantiles=1000, output_distribution="uniform", subsample=10**9)
    oh = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    def x(df, fit):
        num = q.fit_transform(df[numeric]) if fit else q.transform(df[numeric])
        cat = oh.fit_transform(df[CATEGORICAL]) if fit else oh.transform(df[CATEGORICAL])
        return np.hstack([num, cat]).astype(np.float32)
    return x(train, True), x(val, False)


def balanced(y):
    counts = np.bincount(y, minlength=len(CLASSES)).astype(np.float64)
    present = counts > 0
    w = np.zeros(len(CLASSES))
    w[present] = len(y) / (present.sum() * counts[present])
    return w


def mlp_fold(trial, params, xt, yt, xv, yv, fold, step0, seed):
    import torch
    from torch import nn
    torch.manual_seed(seed + fold)
    layers, width = [], xt.shape[1]
    for h in params["hidden_dims"]:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(params["dropout"])]
        width = h
    model = nn.Sequential(*layers, nn.Linear(width, len(CLASSES)))
    opt = torch.optim.Adam(model.parameters(), lr=params["learning_rate"],
                           weight_decay=params["weight_decay"], eps=1e-8)
    schedule = torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.1)
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(balanced(yt), dtype=torch.float32))
    xt_t, yt_t = torch.from_numpy(xt), torch.from_numpy(yt).long()
    xv_t, yv_t = torch.from_numpy(xv), torch.from_numpy(yv).long()
    g = torch.Generator().manual_seed(seed + fold)
    best, best_state, waited, auc = float("inf"), None, 0, float("nan")
    for epoch in range(1, 101):
        model.train()
        order = torch.randperm(len(yt_t), generator=g)
        for i in range(0, len(order), params["batch_size"]):
            idx = order[i:i + params["batch_size"]]
            opt.zero_grad()
            loss_fn(model(xt_t[idx]), yt_t[idx]).backward()
            opt.step()
        schedule.step()
        model.eval()
        with torch.no_grad():
            logits = model(xv_t)
            val_loss = loss_fn(logits, yv_t).item()
            p_attack = 1.0 - torch.softmax(logits, 1)[:, 0].numpy()
        auc = roc_auc_score(yv != 0, p_attack)
        trial.report(auc, step0 + epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
        if val_loss < best:
            best, waited = val_loss, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
            best_auc = auc
        else:
            waited += 1
            if waited >= 10:
                break
    return best_auc


def gb_fold(params, xt, yt, xv, yv, seed):
    import xgboost as xgb
    w = balanced(yt)[yt]
    dt = xgb.DMatrix(xt, label=yt, weight=w)
    dv = xgb.DMatrix(xv, label=yv, weight=balanced(yv)[yv])
    booster = xgb.train(
        {"objective": "multi:softprob", "num_class": len(CLASSES), "tree_method": "hist",
         "max_bin": 256, "eta": params["learning_rate"], "max_depth": params["max_depth"],
         "subsample": params["subsample"], "lambda": params["l2"],
         "min_child_weight": params["min_child_weight"], "seed": seed,
         "eval_metric": "mlogloss", "nthread": int(os.environ.get("THREADS", "2"))},
        dt, num_boost_round=200, evals=[(dv, "val")], early_stopping_rounds=20,
        verbose_eval=False)
    p = booster.predict(dv, iteration_range=(0, booster.best_iteration + 1))
    return roc_auc_score(yv != 0, 1.0 - p[:, 0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", choices=["mlp", "gradient_boosting"], required=True)
    ap.add_argument("--nsl-kdd", required=True)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--cv", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--pruner", choices=["median", "none"], default="median")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    os.environ["THREADS"] = str(a.threads)
    if a.family == "mlp":  # boosting's side needs no PyTorch
        import torch
        torch.set_num_threads(a.threads)
    x, y = load(a.nsl_kdd)
    folds = []
    for tr, va in StratifiedKFold(a.cv, shuffle=True, random_state=42).split(x, y):
        xt, xv = encode(x.iloc[tr], x.iloc[va])
        folds.append((xt, y[tr], xv, y[va]))

    def objective(trial):
        if a.family == "mlp":
            params = {
                "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
                "batch_size": trial.suggest_categorical("batch_size", [128, 256, 512]),
                "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-3, log=True),
                "hidden_dims": [[64, 32], [128, 64, 32], [256, 128], [256, 128, 64]][
                    trial.suggest_categorical("hidden_dims", [0, 1, 2, 3])],
                "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            }
            return float(np.mean([mlp_fold(trial, params, *f, k, k * 1000, a.seed)
                                  for k, f in enumerate(folds)]))
        params = {
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
            "max_depth": trial.suggest_int("max_depth", 3, 10),
            "subsample": trial.suggest_float("subsample", 0.5, 1.0),
            "l2": trial.suggest_float("l2", 0.01, 10, log=True),
            "min_child_weight": trial.suggest_float("min_child_weight", 0.1, 10, log=True),
        }
        return float(np.mean([gb_fold(params, *f, a.seed) for f in folds]))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = optuna.pruners.MedianPruner() if a.pruner == "median" else optuna.pruners.NopPruner()
    study = optuna.create_study(direction="maximize", pruner=pruner,
                                sampler=optuna.samplers.TPESampler(seed=a.seed))
    start = time.perf_counter()
    study.optimize(lambda t: objective(t), n_trials=a.trials,
                   callbacks=[lambda s, t: print(f"trial {t.number + 1}: {t.state.name} {t.value} {t.params}", flush=True)])
    wall = time.perf_counter() - start
    print(f"best {study.best_value:.6f} wall {wall:.1f} s trials {a.trials} params {study.best_params}")


if __name__ == "__main__":
    main()
