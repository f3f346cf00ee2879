"""What the clean room runs: the live, approved policy set of the gate and
model configuration of the recommender, loaded through the deploy check
(``release.deploy.load_live``)."""

from __future__ import annotations

from cleanroom.foryou import RankingConfig
from cleanroom.gate.policy import load_files
from cleanroom.release.deploy import Loaded, load_live
from cleanroom.room import CleanRoom
from cleanroom.room.manifests import model_digest, text_files_digest


def load_policy(room: CleanRoom) -> Loaded:
    """Load the live approved policy set into the gate (deploy check first)."""
    loaded = load_live(room.releases, room.log, "policy", text_files_digest)
    room.gate.set_policy(load_files(loaded.content["files"]))
    return loaded


def load_model_config(room: CleanRoom) -> tuple[RankingConfig, Loaded]:
    """The live approved model configuration (deploy check first)."""
    loaded = load_live(room.releases, room.log, "model", model_digest)
    return RankingConfig.parse(loaded.content["config"]), loaded
