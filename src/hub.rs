//! Publishing a model to a Hugging Face Hub repository (hf-hub 1.0): the checkpoint, its
//! weights as safetensors, a config.json, metrics and report when present, and a model card,
//! all in one commit. The token never appears in output, logs or errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hf_hub::repository::{AddSource, CommitOperation};
use hf_hub::{HFClient, HFClientSync, HFError, RepoTypeModel};
use serde_json::json;

use crate::bail_input;
use crate::checkpoint::Checkpoint;
use crate::config::Config;
use crate::error::bad_input;
use crate::eval::Metrics;
use crate::model::ModelKind;

/// What to publish and where.
pub struct UploadRequest<'a> {
    pub checkpoint: &'a Path,
    pub repo_id: &'a str,
    pub token: Option<String>,
    pub private: bool,
    pub revision: &'a str,
    pub commit_message: Option<String>,
}

/// `--token`, else `HF_TOKEN`, else the file the Hugging Face CLI writes
/// (`HF_TOKEN_PATH`, `$HF_HOME/token`, `~/.cache/huggingface/token`).
pub fn resolve_token(given: Option<String>) -> Option<String> {
    let clean = |t: String| Some(t.trim().to_string()).filter(|t| !t.is_empty());
    if let Some(t) = given.and_then(clean) {
        return Some(t);
    }
    if let Some(t) = std::env::var("HF_TOKEN").ok().and_then(clean) {
        return Some(t);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let hf_home = std::env::var_os("HF_HOME")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".cache/huggingface")));
    let file = std::env::var_os("HF_TOKEN_PATH")
        .map(PathBuf::from)
        .or_else(|| hf_home.map(|h| h.join("token")))?;
    std::fs::read_to_string(file).ok().and_then(clean)
}

fn split_repo_id(repo_id: &str) -> Result<(&str, &str)> {
    match repo_id.split_once('/') {
        Some((owner, name))
            if !owner.is_empty()
                && !name.is_empty()
                && !name.contains('/')
                && repo_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) =>
        {
            Ok((owner, name))
        }
        _ => bail_input!(
            "--repo-id {repo_id:?}: expected owner/name (letters, digits, '-', '_', '.')"
        ),
    }
}

/// The weights in safetensors format, PyTorch names and layout.
pub fn safetensors_bytes(ck: &Checkpoint) -> Result<Vec<u8>> {
    let device = crate::device::select(&Default::default())?.device;
    let tensors = ck.network()?.named_weights(&device)?;
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .into_iter()
        .map(|t| {
            (
                t.name,
                t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                t.shape,
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(name, data, shape)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .map_err(|e| anyhow::anyhow!("safetensors view {name}: {e}"))?;
            Ok((name.clone(), view))
        })
        .collect::<Result<_>>()?;
    let meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        (
            "producer".to_string(),
            format!("anomaly {}", env!("CARGO_PKG_VERSION")),
        ),
    ]);
    safetensors::serialize(views, Some(meta))
        .map_err(|e| anyhow::anyhow!("writing safetensors: {e}"))
}

/// `config.json`: everything another tool needs to use the weights.
pub fn config_json(ck: &Checkpoint) -> Result<serde_json::Value> {
    let d = &ck.config.data;
    let spec = &ck.network()?.spec;
    Ok(json!({
        "library": "anomaly",
        "tool_version": env!("CARGO_PKG_VERSION"),
        "checkpoint_format_version": ck.format_version,
        "architecture": {
            "type": spec.kind,
            "input_dim": spec.input_dim,
            "hidden_dims": spec.hidden_dims,
            "outputs": spec.outputs,
            "activation": spec.activation,
            "dropout": spec.dropout,
            "output": if spec.kind == ModelKind::Autoencoder {
                "the reconstructed row; the anomaly score is its mean squared error against the preprocessed input"
            } else if ck.preprocessor.classes.is_empty() {
                "one logit; sigmoid gives the anomaly probability"
            } else {
                "one logit per class (see classes); softmax gives class probabilities, and the anomalous classes' total is the anomaly probability"
            },
            "weights": if spec.sequence.is_some() {
                "model.safetensors: conv.K.weight [out, in, kernel] and conv.K.bias as torch.nn.Conv1d, norm.K.* as torch.nn.BatchNorm1d, lstm.{weight,bias}_{ih,hh}_lK[_reverse] as torch.nn.LSTM, head.* as torch.nn.Linear"
            } else {
                "model.safetensors: layers.K.weight [out, in] and layers.K.bias, as torch.nn.Linear (resmlp also norms.K.* as torch.nn.BatchNorm1d and skips.K.weight)"
            },
            "sequence": spec.sequence.as_ref().map(|_| json!({
                "input": "windows of `length` consecutive flows of one group, as [features, length] (channels × time)",
                "spec": spec.sequence,
                "order_by": ck.config.sequence.order_by,
                "group_by": ck.config.sequence.group_by,
            })),
        },
        "classes": ck.preprocessor.classes,
        "anomalous_classes": ck.preprocessor.anomalous,
        "threshold": ck.threshold,
        "feature_names": ck.preprocessor.feature_names,
        "preprocessing": ck.preprocessor,
        "label": {
            "column": d.label_column,
            "negative_labels": d.negative_labels,
            "positive_labels": d.positive_labels,
        },
        "trained": {
            "data": d.path,
            "rows": ck.data.train_rows,
            "epochs": ck.epoch,
            "best_epoch": ck.weights_epoch,
        },
    }))
}

/// The model card, with front matter the Hub reads (model-index carries the test metrics).
pub fn model_card(
    ck: &Checkpoint,
    repo_id: &str,
    checkpoint_name: &str,
    metrics: Option<&Metrics>,
) -> Result<String> {
    let spec = &ck.network()?.spec;
    let name = repo_id.rsplit('/').next().unwrap_or(repo_id);
    let data = ck
        .config
        .data
        .path
        .file_name()
        .map_or("data".into(), |f| f.to_string_lossy().into_owned());
    let mut front = format!(
        "---\nlibrary_name: anomaly\nlicense: mit\ntags:\n- anomaly-detection\n- network-security\n- intrusion-detection\n- tabular-classification\n- burn\ndatasets:\n- {data}\n"
    );
    if let Some(m) = metrics {
        front += &format!(
            "model-index:\n- name: {name}\n  results:\n  - task:\n      type: tabular-classification\n      name: Network traffic anomaly detection\n    dataset:\n      name: {data}\n      type: {data}\n    metrics:\n"
        );
        let mut add = |kind: &str, v: Option<f64>| {
            if let Some(v) = v {
                front += &format!("    - type: {kind}\n      value: {v:.4}\n");
            }
        };
        add("accuracy", Some(m.accuracy));
        add("precision", Some(m.precision));
        add("recall", Some(m.recall));
        add("f1", Some(m.f1));
        add("roc_auc", m.roc_auc);
        add("pr_auc", m.pr_auc);
    }
    front += "---\n";
    let table = metrics.map_or(String::from("No test metrics were recorded for this checkpoint.\n"), |m| {
        let f = |v: Option<f64>| v.map_or("n/a".into(), |x| format!("{x:.4}"));
        format!(
            "| accuracy | precision | recall | F1 | ROC AUC | PR AUC | rows |\n|---|---|---|---|---|---|---|\n| {:.4} | {:.4} | {:.4} | {:.4} | {} | {} | {} |\n",
            m.accuracy, m.precision, m.recall, m.f1, f(m.roc_auc), f(m.pr_auc), m.rows
        )
    });
    let network = match &spec.sequence {
        Some(s) => format!(
            "a CNN+LSTM (conv {:?}, LSTM {}) over windows of {} consecutive flows",
            s.conv_channels, s.lstm_hidden, s.length
        ),
        None => format!(
            "an MLP ({} → {:?} → {}, {:?})",
            spec.input_dim, spec.hidden_dims, spec.outputs, spec.activation
        ),
    };
    Ok(format!(
        "{front}\n# {name}\n\nA network-traffic anomaly detector trained with [anomaly](https://github.com/) {version}: {network} \
         over {n} features of flow records, scoring each row's probability of being \
         anomalous; rows scoring at least {thr:.4} are flagged.\n\n## Test metrics\n\n{table}\n## Use\n\n\
         ```\nanomaly predict --checkpoint {ck} --data your_flows.csv --out scores.csv\n```\n\n\
         The checkpoint carries the preprocessing (column encodings, imputation, scaling) and the threshold, so a CSV with \
         the training columns is all it needs. `model.safetensors` holds the same weights for other frameworks \
         (`layers.K.weight` / `layers.K.bias`, PyTorch layout); `config.json` describes the architecture and preprocessing.\n\n\
         ## Training\n\n- data: `{data}` (label column `{label}`)\n- epochs run: {epochs}, best epoch: {best}\n- features: {features}\n",
        version = env!("CARGO_PKG_VERSION"),
        n = ck.preprocessor.n_features(),
        thr = ck.threshold,
        ck = checkpoint_name,
        label = ck.config.data.label_column,
        epochs = ck.epoch,
        best = ck.weights_epoch,
        features = ck.preprocessor.feature_names.join(", "),
    ))
}

/// Rewords hub errors with the repository they concern; never the token.
fn explain(err: HFError, repo_id: &str, endpoint: &str, token: &str) -> anyhow::Error {
    let scrub = |s: String| {
        if token.is_empty() {
            s
        } else {
            s.replace(token, "***")
        }
    };
    let msg = match &err {
        HFError::AuthRequired { .. } => {
            return bad_input(format!(
                "the Hub at {endpoint} refused the token for {repo_id} (401): check that it is valid"
            ));
        }
        HFError::Forbidden { .. } => {
            return bad_input(format!("the token has no write access to {repo_id} (403)"));
        }
        HFError::RepoNotFound { .. } => {
            return bad_input(format!(
                "{repo_id} was not found (404): check the namespace and that the repository can be created"
            ));
        }
        HFError::Http { context } if context.status.as_u16() == 404 => {
            return bad_input(format!(
                "the namespace of {repo_id} was not found on {endpoint} (404)"
            ));
        }
        HFError::Request { .. } => format!("cannot reach the Hub at {endpoint}: {err}"),
        other => format!("uploading to {repo_id}: {other}"),
    };
    anyhow::anyhow!(scrub(msg))
}

/// `huggingface.push_to_hub`: uploads the run's best.mpk to `huggingface.repo_id` after
/// training; the line to log, or None when the config does not ask for it.
pub fn push_trained(config: &Config) -> Result<Option<String>> {
    let hf = &config.huggingface;
    let Some(repo_id) = hf.repo_id.as_deref().filter(|_| hf.push_to_hub) else {
        return Ok(None);
    };
    let best = config.checkpoint.save_dir.join("best.mpk");
    let files = upload(&UploadRequest {
        checkpoint: &best,
        repo_id,
        token: None,
        private: hf.private,
        revision: "main",
        commit_message: None,
    })?;
    Ok(Some(format!(
        "pushed {} to {repo_id}: {}",
        best.display(),
        files.join(", ")
    )))
}

/// Creates the repository if needed and uploads everything in one commit. Returns the files.
pub fn upload(req: &UploadRequest) -> Result<Vec<String>> {
    let (owner, name) = split_repo_id(req.repo_id)?;
    let ck = Checkpoint::load(req.checkpoint)?;
    let Some(token) = resolve_token(req.token.clone()) else {
        bail_input!(
            "no Hugging Face token: pass --token, set HF_TOKEN, or log in with the Hugging Face CLI"
        );
    };
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    let ck_name = req
        .checkpoint
        .file_name()
        .map_or("model.mpk".into(), |f| f.to_string_lossy().into_owned());
    let dir = req.checkpoint.parent().unwrap_or(Path::new("."));
    let metrics_path = dir.join("metrics.json");
    let metrics: Option<Metrics> = std::fs::read_to_string(&metrics_path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| serde_json::from_value(v["metrics"].clone()).ok());
    let report = PathBuf::from("reports")
        .join(&ck.run_name)
        .join("report.html");

    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            ck_name.clone(),
            std::fs::read(req.checkpoint)
                .with_context(|| format!("reading {}", req.checkpoint.display()))?,
        ),
        ("model.safetensors".into(), safetensors_bytes(&ck)?),
        (
            "config.json".into(),
            (serde_json::to_string_pretty(&config_json(&ck)?)? + "\n").into_bytes(),
        ),
        (
            "README.md".into(),
            model_card(&ck, req.repo_id, &ck_name, metrics.as_ref())?.into_bytes(),
        ),
    ];
    if metrics.is_some() {
        files.push(("metrics.json".into(), std::fs::read(&metrics_path)?));
    }
    if report.exists() {
        files.push(("report.html".into(), std::fs::read(&report)?));
    }

    let client = HFClient::builder()
        .endpoint(endpoint.clone())
        .token(token.clone())
        .retry_max_attempts(3)
        .retry_base_delay(std::time::Duration::from_millis(200))
        .build()
        .map_err(|e| explain(e, req.repo_id, &endpoint, &token))?;
    let hub =
        HFClientSync::from_inner(client).map_err(|e| explain(e, req.repo_id, &endpoint, &token))?;
    hub.create_repository()
        .repo_id(req.repo_id)
        .repo_type(RepoTypeModel)
        .private(req.private)
        .exist_ok(true)
        .send()
        .map_err(|e| explain(e, req.repo_id, &endpoint, &token))?;
    let names: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
    let operations = files
        .into_iter()
        .map(|(path_in_repo, bytes)| CommitOperation::Add {
            path_in_repo,
            source: AddSource::Bytes(bytes.into()),
        })
        .collect();
    let message = req
        .commit_message
        .clone()
        .unwrap_or_else(|| format!("Upload {ck_name} (anomaly {})", env!("CARGO_PKG_VERSION")));
    hub.model(owner, name)
        .create_commit()
        .operations(operations)
        .commit_message(message)
        .revision(req.revision.to_string())
        .send()
        .map_err(|e| explain(e, req.repo_id, &endpoint, &token))?;
    Ok(names)
}
