//! The load workers' Kubernetes manifests (`deploy/kubernetes/load-*.yaml`) as the cluster would
//! run them: the scenario of the ConfigMap and every worker's arguments, with the variables the
//! pod gets filled in, pass `twinpeak load --check`; the Job runs as many workers as it tells
//! each one there are, one per node and never retried, and the merge reads exactly the records
//! they write from the one shared volume.

use std::path::Path;
use std::process::Command;

use serde_yaml::Value;

fn documents(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/kubernetes")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    text.split("\n---\n")
        .map(|doc| serde_yaml::from_str(doc).unwrap())
        .collect()
}

fn config_map<'a>(docs: &'a [Value], name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no ConfigMap {name}"))
}

fn container(job: &Value) -> &Value {
    &job["spec"]["template"]["spec"]["containers"][0]
}

/// The container's arguments with `$(NAME)` replaced as the kubelet does, from the ConfigMap
/// keys its environment names and from `extra`.
fn expanded_args(job: &Value, run: &Value, extra: &[(&str, String)]) -> Vec<String> {
    let mut values: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    for var in container(job)["env"].as_sequence().unwrap() {
        let key = var["valueFrom"]["configMapKeyRef"]["key"].as_str().unwrap();
        let value = run["data"][key].as_str().unwrap().to_owned();
        values.push((var["name"].as_str().unwrap().to_owned(), value));
    }
    container(job)["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|arg| {
            let mut arg = arg.as_str().unwrap().to_owned();
            for (name, value) in &values {
                arg = arg.replace(&format!("$({name})"), value);
            }
            assert!(!arg.contains("$("), "unexpanded variable in {arg}");
            arg
        })
        .collect()
}

#[test]
fn every_worker_of_the_job_passes_check_and_the_merge_reads_their_records() {
    let maps = documents("load-configmap.yaml");
    let scenario = config_map(&maps, "twinpeak-load-scenario");
    let run = config_map(&maps, "twinpeak-load-run");
    let job = &documents("load-job.yaml")[0];
    let merge = &documents("load-merge-job.yaml")[0];
    let pvc = &documents("load-pvc.yaml")[0];

    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let workers = spec["completions"].as_u64().unwrap();
    assert_eq!(
        spec["parallelism"].as_u64(),
        Some(workers),
        "every worker at once"
    );
    // A failed worker is not run again (it would send its share twice, late), nor a merge.
    for j in [job, merge] {
        assert_eq!(j["spec"]["backoffLimit"].as_u64(), Some(0), "no retries");
        assert_eq!(j["spec"]["template"]["spec"]["restartPolicy"], "Never");
    }
    // One worker per node, required, by the label every worker pod carries.
    let pod_labels = &spec["template"]["metadata"]["labels"];
    let anti = &spec["template"]["spec"]["affinity"]["podAntiAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"];
    let terms = anti.as_sequence().expect("required pod anti-affinity");
    assert!(
        terms.iter().any(|t| {
            t["topologyKey"] == "kubernetes.io/hostname"
                && t["labelSelector"]["matchLabels"]
                    .as_mapping()
                    .is_some_and(|m| m.iter().all(|(k, v)| pod_labels[k] == *v))
        }),
        "{anti:?}"
    );
    // Every pod, on any node, writes to the one volume.
    let modes = pvc["spec"]["accessModes"].as_sequence().unwrap();
    assert_eq!(modes, &[Value::from("ReadWriteMany")]);
    let claim = pvc["metadata"]["name"].as_str().unwrap();
    for j in [job, merge] {
        let volumes = j["spec"]["template"]["spec"]["volumes"]
            .as_sequence()
            .unwrap();
        assert!(
            volumes
                .iter()
                .any(|v| v["persistentVolumeClaim"]["claimName"] == claim),
            "records on the shared volume"
        );
    }
    let mounted = container(job)["volumeMounts"].as_sequence().unwrap();
    let scenario_dir = mounted
        .iter()
        .find(|m| m["name"] == "scenario")
        .and_then(|m| m["mountPath"].as_str())
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let scenario_file = dir.path().join("scenario.yaml");
    std::fs::write(
        &scenario_file,
        scenario["data"]["scenario.yaml"].as_str().unwrap(),
    )
    .unwrap();
    let mut outs = Vec::new();
    for k in 0..workers {
        let args = expanded_args(job, run, &[("JOB_COMPLETION_INDEX", k.to_string())]);
        assert_eq!(args[0], "load");
        assert_eq!(args[1], format!("{scenario_dir}/scenario.yaml"));
        let n = args.iter().position(|a| a == "--workers").unwrap();
        assert_eq!(args[n + 1], workers.to_string(), "N as the Job runs them");
        let out = args.iter().position(|a| a == "--out").unwrap();
        outs.push(format!("{}/run.json", args[out + 1]));
        let output = Command::new(env!("CARGO_BIN_EXE_twinpeak"))
            .arg("load")
            .arg(&scenario_file)
            .args(&args[2..])
            .arg("--check")
            .env("JOB_COMPLETION_INDEX", k.to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "worker {k}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains(&format!("worker {k}/{workers} (from 0)")),
            "{stdout}"
        );
        assert!(
            stdout.contains("data.customer: split, 2 value(s)"),
            "{stdout}"
        );
    }
    let merge_args = expanded_args(merge, run, &[]);
    assert_eq!(merge_args[0], "report");
    let read: Vec<&String> = merge_args[1..]
        .iter()
        .take_while(|a| !a.starts_with("--"))
        .collect();
    assert_eq!(
        read,
        outs.iter().collect::<Vec<_>>(),
        "the merge reads every worker's record"
    );
}
