#!/usr/bin/env python3
"""Checks docker/compose.yaml and docker/Dockerfile where no Docker engine runs.

compose.yaml: the services of a whole home are there and wired as on real
hubs (each hub's daemons in its broker's network namespace, so OOB listeners
stay on loopback); compose-setup.sh is run into a directory per volume and
every path a service uses (its command's config, the files that config
names, a broker's files, a bridge's link) is resolved through that service's
own mounts, so a file it could not see in a container is an error. Then the
isolation the home promises: every volume holding a secret is mounted only by
the services it belongs to, holds only the files it should, nothing is
readable by group or others, and nothing but setup runs as root.
The Dockerfile itself is built and the home run by tests/deploy/compose-test.sh.

    check_compose.py REPO_ROOT
"""
import json
import os
import re
import shutil
import stat
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

# Run the setup script into a directory per volume, as its container would.
tmp = tempfile.mkdtemp()
vol = os.path.join(tmp, "vol")
env = dict(os.environ, HUBSYNC_SHARE=root, HUBSYNC_VOLUMES=vol, HUBSYNC_OWNER="")
setup = services.get("setup", {})
for v in setup.get("volumes", []):
    name, mount = v.split(":")[:2]
    check(mount == "/vol/" + name, f"setup: volume {name} not at /vol/{name}")
    os.makedirs(os.path.join(vol, name), exist_ok=True)
subprocess.run(["bash", os.path.join(root, "docker/compose-setup.sh")], env=env, check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
check(os.path.exists(os.path.join(vol, "data-living-room/devices/lamp-1.json")),
      "setup wrote no sample data")
check(setup.get("environment", {}).get("HUBSYNC_OWNER") == "990:990",
      "setup does not hand the volumes to the services' user")


def mounts(svc):
    out = {}
    for v in svc.get("volumes", []):
        parts = v.split(":")
        out[parts[1]] = parts[0]
    return out


def resolve(name, path):
    """Where `path`, as service `name` sees it, is in the setup output."""
    best = None
    for mount, volume in mounts(services[name]).items():
        if path == mount or path.startswith(mount.rstrip("/") + "/"):
            if best is None or len(mount) > len(best[0]):
                best = (mount, volume)
    if best is None:
        errors.append(f"{name}: {path} is on no volume it mounts")
        return os.path.join(tmp, "nowhere")
    return os.path.join(vol, best[1], path[len(best[0]):].lstrip("/"))


def exists(name, path, what):
    real = resolve(name, path)
    check(os.path.exists(real), f"{name}: {what} {path} is not written by setup")
    return real


users = {}   # volume -> services mounting it
roles = {}
hub_of = {}  # service -> the hub whose network namespace it is in
for name, svc in services.items():
    check(svc.get("image") == "hubsync:latest", f"{name}: image is not hubsync:latest")
    for volume in mounts(svc).values():
        check(volume in declared_volumes, f"{name}: volume {volume} not declared")
        users.setdefault(volume, set()).add(name)
    if name == "setup":
        check(svc["entrypoint"][-1] == "/opt/hubsync/share/hubsync/compose-setup.sh",
              "setup does not run the installed compose-setup.sh")
        continue
    check(str(svc.get("user", "")) == "990:990", f"{name}: does not run as the unprivileged user")
    check(svc.get("depends_on", {}).get("setup", {}).get("condition") ==
          "service_completed_successfully", f"{name}: does not wait for setup")
    if name.startswith("broker-"):
        hub_of[name] = name[len("broker-"):]
        ep = svc["entrypoint"]
        check(ep[:2] == ["mosquitto", "-c"], f"{name}: not a mosquitto broker")
        conf = exists(name, ep[2], "config")
        if os.path.exists(conf):
            text = open(conf).read()
            check(text == open(os.path.join(root, "broker-config/hub.conf")).read(),
                  f"{name}: not the shipped hub.conf")
            for ref in re.findall(r"^(?:password_file|acl_file|cafile|certfile|keyfile) (\S+)",
                                  text, re.M):
                exists(name, ref, "broker file")
        continue
    cmd = svc["command"]
    check(cmd[0] in ("primary", "backup", "bridge") and cmd[1] == "-c",
          f"{name}: command {cmd} is not a hubsync daemon")
    roles[name] = cmd[0]
    ns = svc.get("network_mode", "")
    check(ns.startswith("service:broker-"), f"{name}: not in a hub broker's network namespace")
    check(ns[len("service:"):] in services, f"{name}: {ns} names no service")
    hub_of[name] = ns[len("service:broker-"):]
    path = exists(name, cmd[2], "config")
    if not os.path.exists(path):
        continue
    cfg = json.load(open(path))
    for key in ("home", "gateway_id", "broker", "data_dir", "state_dir"):
        check(key in cfg, f"{name}: config lacks {key}")
    check(cfg.get("gateway_id") == hub_of[name], f"{name}: speaks as another hub's gateway")
    check(cfg.get("oob", {}).get("uri") == "tcp://127.0.0.1:1884",
          f"{name}: OOB broker is not the hub's loopback listener")
    check(cfg.get("oob", {}).get("username") == hub_of[name], f"{name}: OOB account of another hub")
    exists(name, cfg.get("oob", {}).get("password_file", "-"), "OOB password")
    if cmd[0] != "bridge":
        check(cfg["broker"]["uri"].startswith("ssl://"), f"{name}: does not reach the LAN over TLS")
        exists(name, cfg["broker"].get("ca_file", "-"), "CA")
        exists(name, cfg["broker"].get("password_file", "-"), "LAN password")
        check(cfg["broker"].get("username") == hub_of[name], f"{name}: LAN account of another hub")
        for key in ("data_dir", "state_dir"):
            check(resolve(name, cfg[key]).startswith(vol), f"{name}: {key} is not a volume")
    else:
        link = cfg.get("bridge", {}).get("link", "")
        check(link.startswith("unix:/run/ble/"), f"{name}: link {link} not on a link volume")
        volume = mounts(svc).get("/run/ble", "")
        check(volume.startswith("link-"), f"{name}: /run/ble is not a link volume")
    if cmd[0] == "primary":
        check(sorted(cfg.get("backups", [])) == ["hub-bedroom", "hub-kitchen"],
              "primary does not list both backups")
check(sorted(roles.values()).count("bridge") == 4, "expected 4 bridges (2 per backup)")
check(list(roles.values()).count("backup") == 2, "expected 2 backups")

# Isolation: who mounts each volume, and what it holds.
daemons = {hub_of[n]: n for n, r in roles.items() if r != "bridge"}
for volume, who in sorted(users.items()):
    who = who - {"setup"}
    kind, _, short = volume.partition("-")
    hub = "hub-" + short
    files = sorted(os.listdir(os.path.join(vol, volume))) if os.path.isdir(os.path.join(vol, volume)) else []
    if kind == "broker":
        check(who == {"broker-" + hub}, f"{volume}: mounted by {sorted(who)}")
        check(files == sorted(["mosquitto.conf", "passwd", "acl", "oob.acl", "ca.crt", "server.crt",
                               "server.key"]), f"{volume}: holds {files}")
    elif kind == "etc":
        check(who == {daemons.get(hub)}, f"{volume}: mounted by {sorted(who)}")
        extra = ["status.json", "status.pass"] if hub == "hub-living-room" else []
        check(files == sorted(["ca.crt", "hubsync.json", "lan.pass", "oob.pass"] + extra),
              f"{volume}: holds {files}")
    elif kind == "bridge":
        check(who and all(roles.get(n) == "bridge" and hub_of[n] == hub for n in who),
              f"{volume}: mounted by {sorted(who)}")
        check("oob.pass" in files and all(f == "oob.pass" or f.endswith(".json") for f in files),
              f"{volume}: holds {files}")
    elif kind == "link":
        check(len(who) == 2 and all(roles.get(n) == "bridge" for n in who) and
              {hub_of[n] for n in who} == {"hub-living-room", hub}, f"{volume}: shared by {sorted(who)}")
    elif kind in ("data", "state"):
        check(who == {daemons.get(hub)}, f"{volume}: mounted by {sorted(who)}")
    else:
        errors.append(f"{volume}: a volume of no known kind")
for dirpath, dirnames, filenames in os.walk(vol):
    for f in dirnames + filenames:
        mode = os.lstat(os.path.join(dirpath, f)).st_mode
        check(mode & (stat.S_IRWXG | stat.S_IRWXO) == 0,
              f"{os.path.relpath(os.path.join(dirpath, f), vol)} is open to group or others")

# A second run keeps everything as it is.
before = {os.path.join(d, f): open(os.path.join(d, f), "rb").read()
          for d, _, fs in os.walk(vol) for f in fs}
subprocess.run(["bash", os.path.join(root, "docker/compose-setup.sh")], env=env, check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
after = {os.path.join(d, f): open(os.path.join(d, f), "rb").read()
         for d, _, fs in os.walk(vol) for f in fs}
check(before == after, "a second setup run changed the volumes")

shutil.rmtree(tmp)
if errors:
    print("\n".join("compose check: " + e for e in errors))
    sys.exit(1)
print(f"compose check: ok ({len(services)} services)")
