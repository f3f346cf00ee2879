"""The story in order: steps 1-2 here, then each part of the demo in turn."""

from __future__ import annotations

import shutil
from pathlib import Path

from cleanroom.api.serving import InProcessServer
from cleanroom.demo.browse import browse
from cleanroom.demo.narration import ORIGIN, console, step
from cleanroom.demo.oversight import ledger, oversight
from cleanroom.demo.platform import clean_room, for_you
from cleanroom.demo.releases import releases, screening
from cleanroom.ledger.note import ALG_COSIGNATURE_V1, generate_signer
from cleanroom.ledger.serving import ServerProcess
from cleanroom.ledger.witness import Witness
from cleanroom.oversight.witness import MonitorWitness, init_key
from cleanroom.room.config import Config, DataDir, WitnessRef
from cleanroom.room.setup import init_data_dir, register_principals


def run_demo(keep: bool = False, serve: bool = False) -> None:
    base = Path(".cleanroom/demo").resolve()
    shutil.rmtree(base, ignore_errors=True)
    log_dir, witness_dir, monitor_dir = base / "operator", base / "witness", base / "monitor"

    step("1. The operator initialises a clean room (SQLite + local keys, site in the US)")
    dd, log_signer = init_data_dir(log_dir, ORIGIN)
    log_vkey = log_signer.verifier.vkey
    tokens = register_principals(dd)
    console.print(f"log verifier key: [green]{log_vkey}")
    console.print("principals: " + ", ".join(f"{n} ({d})" for n, (_, d) in tokens.items()))

    step("2. The oversight body runs its own witness and pins the log's key")
    wd = DataDir(witness_dir)
    wd.save(Config(origin="oversight.example/witness"))
    w_signer = generate_signer("oversight.example/w1", ALG_COSIGNATURE_V1)
    wd.write_key("witness", w_signer)
    wdb = wd.database()
    Witness(wdb, w_signer).trust_log(ORIGIN, [log_vkey])
    wdb.dispose()
    console.print(f"witness verifier key: [green]{w_signer.verifier.vkey}")

    witness = ServerProcess(witness_dir, witness_only=True).wait_ready()
    config = dd.load()
    config.witnesses = [WitnessRef(w_signer.verifier.vkey, witness.url + "/witness")]
    dd.save(config)
    server = ServerProcess(log_dir).wait_ready()
    try:
        clean_room(server, {n: t for n, (t, _) in tokens.items()}, log_dir, base)
        for_you(server, {n: t for n, (t, _) in tokens.items()})
        releases(dd, server, tokens["olga-oversight"][0])
        screening(dd, server, {n: t for n, (t, _) in tokens.items()}, base)
        # the rest runs the same clean room in this process: a rogue operator
        # with the machine patches the running ranking (what a process apart hides)
        server.stop()
        # the oversight body's monitor is a witness too: the operator adds it
        state = base / "oversight"
        m_vkey = init_key(state, "oversight.example/monitor")
        m_witness = MonitorWitness(state, ORIGIN, log_vkey).serve()
        m_url = m_witness.url
        config = dd.load()
        config.witnesses.append(WitnessRef(m_vkey.vkey, m_url + "/witness"))
        dd.save(config)
        try:
            with InProcessServer(log_dir) as live:
                oversight(live, {n: t for n, (t, _) in tokens.items()}, state, log_vkey)
                ledger(live, witness, log_dir, monitor_dir, log_vkey, w_signer, m_vkey)
            browse(log_dir, state, tokens, base, serve)
        finally:
            m_witness.stop()
    finally:
        server.stop()
        witness.stop()
        note = "kept" if keep else "left for inspection until the next run"
        console.print(f"(demo data in {base}: {note})")
