#!/usr/bin/env python3
"""Checks docker/compose.yaml and docker/Dockerfile where no Docker engine runs.

compose.yaml: the services of a whole home are there and wired as on real
hubs (each hub's daemons in its broker's network namespace, so OOB listeners
stay on loopback), every config a command names is one compose-setup.sh
writes, and that config is valid hubsync JSON pointing at files setup writes.
Dockerfile: every RUN step is one the CI runs too.

    check_compose.py REPO_ROOT
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

root = sys.argv[1]
errors = []


def check(cond, msg):
    if not cond:
        errors.append(msg)


with open(os.path.join(root, "docker/compose.yaml")) as f:
    compose = yaml.safe_load(f)
services = compose["services"]
expected = {
    "setup", "broker-hub-living-room", "primary", "bridge-living-room-kitchen",
    "bridge-living-room-bedroom", "broker-hub-kitchen", "kitchen", "bridge-kitchen",
    "broker-hub-bedroom", "bedroom", "bridge-bedroom",
}
check(set(services) == expected, f"services: {sorted(services)} != {sorted(expected)}")
declared_volumes = set(compose.get("volumes") or {})

# Run the setup script into a temporary /etc/hubsync.
tmp = tempfile.mkdtemp()
etc = os.path.join(tmp, "etc")
sample = os.path.join(tmp, "sample")
os.makedirs(sample)
env = dict(os.environ, HUBSYNC_SHARE=root, HUBSYNC_ETC=etc, HUBSYNC_SAMPLE_DATA=sample)
subprocess.run(["bash", os.path.join(root, "docker/compose-setup.sh")], env=env, check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
check(os.path.exists(os.path.join(sample, "devices/lamp-1.json")), "setup wrote no sample data")


def in_etc(path):
    check(path.startswith("/etc/hubsync/"), f"{path} is not under /etc/hubsync")
    return os.path.join(etc, path[len("/etc/hubsync/"):])


roles = {}
for name, svc in services.items():
    check(svc.get("image") == "hubsync:latest", f"{name}: image is not hubsync:latest")
    for v in svc.get("volumes", []):
        vol = v.split(":")[0]
        check(vol in declared_volumes, f"{name}: volume {vol} not declared")
    if name == "setup":
        check(svc["entrypoint"][-1] == "/opt/hubsync/share/hubsync/compose-setup.sh",
              "setup does not run the installed compose-setup.sh")
        continue
    check(svc.get("depends_on", {}).get("setup", {}).get("condition") ==
          "service_completed_successfully", f"{name}: does not wait for setup")
    if name.startswith("broker-"):
        ep = svc["entrypoint"]
        check(ep[:2] == ["mosquitto", "-c"], f"{name}: not a mosquitto broker")
        conf = in_etc(ep[2])
        check(os.path.exists(conf), f"{name}: {ep[2]} is not written by setup")
        if os.path.exists(conf):
            text = open(conf).read()
            check("allow_anonymous false" in text and "listener 1884 127.0.0.1" in text,
                  f"{name}: not the shipped hub.conf")
            check("listener 8883\n" in text and "certfile " in text,
                  f"{name}: the LAN listener does not speak TLS")
            for ref in re.findall(r"^(?:password_file|acl_file|cafile|certfile|keyfile) (\S+)",
                                  text, re.M):
                check(os.path.exists(in_etc(ref)), f"{name}: {ref} missing")
        continue
    cmd = svc["command"]
    check(cmd[0] in ("primary", "backup", "bridge") and cmd[1] == "-c",
          f"{name}: command {cmd} is not a hubsync daemon")
    roles[name] = cmd[0]
    ns = svc.get("network_mode", "")
    check(ns.startswith("service:broker-"), f"{name}: not in a hub broker's network namespace")
    check(ns[len("service:"):] in services, f"{name}: {ns} names no service")
    path = in_etc(cmd[2])
    if not os.path.exists(path):
        errors.append(f"{name}: {cmd[2]} is not written by setup")
        continue
    cfg = json.load(open(path))
    for key in ("home", "gateway_id", "broker", "data_dir", "state_dir"):
        check(key in cfg, f"{name}: config lacks {key}")
    check(cfg.get("oob", {}).get("uri") == "tcp://127.0.0.1:1884",
          f"{name}: OOB broker is not the hub's loopback listener")
    if cmd[0] != "bridge":
        check(cfg["broker"]["uri"].startswith("ssl://") and
              os.path.exists(in_etc(cfg["broker"].get("ca_file", "-"))),
              f"{name}: does not reach the LAN broker over TLS with the home CA")
    pw = cfg["broker"].get("password_file")
    if pw:
        check(os.path.exists(in_etc(pw)), f"{name}: password file {pw} missing")
    if cmd[0] == "bridge":
        link = cfg.get("bridge", {}).get("link", "")
        check(link.startswith("unix:/run/ble/"), f"{name}: link {link} not on the ble volume")
        check(any(v.startswith("ble:/run/ble") for v in svc.get("volumes", [])) or
              "ble:/run/ble" in str(compose.get("x-hubsync")), f"{name}: no ble volume")
    if cmd[0] == "primary":
        check(sorted(cfg.get("backups", [])) == ["hub-bedroom", "hub-kitchen"],
              "primary does not list both backups")
check(sorted(roles.values()).count("bridge") == 4, "expected 4 bridges (2 per backup)")
check(list(roles.values()).count("backup") == 2, "expected 2 backups")

# Every RUN step of the Dockerfile is one the CI runs as well.
allowed = [
    r"bash docker/install-deps\.sh$",
    r"cmake -S \. -B build .*",
    r'cmake --build build -j"\$\(nproc\)"$',
    r"cmake --install build$",
    r"bash /tmp/install-deps\.sh --runtime && rm -rf .*",
]
text = open(os.path.join(root, "docker/Dockerfile")).read().replace("\\\n", " ")
for run in re.findall(r"^RUN (.*)$", text, re.M):
    run = re.sub(r"\s+", " ", run.strip())
    check(any(re.match(a, run) for a in allowed), f"Dockerfile step not run by CI: RUN {run}")
ci = open(os.path.join(root, "tests/run-all.sh")).read()
check("install-deps.sh --runtime" in ci, "CI does not run install-deps.sh --runtime")

shutil.rmtree(tmp)
if errors:
    print("\n".join("compose check: " + e for e in errors))
    sys.exit(1)
print(f"compose check: ok ({len(services)} services)")
