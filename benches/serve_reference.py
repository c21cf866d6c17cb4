#!/usr/bin/env python3
"""Reference for benches/serve.sh: how the Python project this tool replaces serves a detector,
FastAPI + uvicorn (one worker) + the default MLP in PyTorch, answering the same requests as
`anomaly serve`: POST /api/v1/predict with {"records": [...]} JSON or a text/csv body.

  serve_reference.py --data data/sample.csv [--port 18081] [--threads 2]

The MLP (128-64-32, ReLU, one logit) keeps its initial weights: the benchmark times serving,
not accuracy. Columns are the data's numeric and boolean ones, standard-scaled with the data's
mean and deviation, as the scaler of a trained model would. Written for this benchmark, in the
style of ../shared/peers.
"""
import argparse, io, json

import numpy as np
import pandas as pd
import torch
import uvicorn
from fastapi import FastAPI, HTTPException, Request


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--port", type=int, default=18081)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    frame = pd.read_csv(a.data)
    columns = [c for c in frame.columns if c != "label"]
    x = frame[columns].to_numpy(np.float32)
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-7
    d = len(columns)
    model = torch.nn.Sequential(
        torch.nn.Linear(d, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)).eval()
    app = FastAPI()

    @app.get("/api/v1/health")
    def health():
        return {"status": "ok"}

    @app.post("/api/v1/predict")
    async def predict(request: Request):
        body = await request.body()
        try:
            if request.headers.get("content-type", "").startswith("text/csv"):
                rows = pd.read_csv(io.BytesIO(body))
            else:
                rows = pd.DataFrame(json.loads(body)["records"])
            batch = (rows[columns].to_numpy(np.float32) - mean) / std
        except Exception as e:  # noqa: BLE001 - any bad body is the client's fault
            raise HTTPException(status_code=422, detail=str(e))
        with torch.no_grad():
            scores = torch.sigmoid(model(torch.from_numpy(batch))).squeeze(1).numpy()
        return {"predictions": [{"row": i + 1, "score": float(s), "is_anomaly": bool(s >= 0.5)}
                                for i, s in enumerate(scores)]}

    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning")


if __name__ == "__main__":
    main()
