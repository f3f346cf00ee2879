"""The recommender's part in a cluster: one trainer, every node serving the
live model by its digest.

The node holding the ``trainer`` lease trains (at start, when asked, after
enough new events), writes the one ``model.trained`` entry, stores the model's
serving artifact and publishes its version; it alone holds the training rows,
so it alone forgets deleted users from the model (the exact downdate) and
publishes the version after it, with its ``model.updated`` entry. Every other
node loads the published version, verifies the artifact against its digest,
passes it through the deploy check and swaps it in. A node that deletes a user
asks the trainer to forget them; a node asked to retrain asks the trainer.
When the trainer dies its lease expires and another node takes it over (and
trains, to hold the rows)."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from cleanroom.cluster.models import Lease, ModelStore
from cleanroom.foryou.model import Model

if TYPE_CHECKING:
    from cleanroom.room.recommender import Recommender

log = logging.getLogger(__name__)
TICK_S = 0.5  # how often a node looks at the live model, the lease and the requests


class ClusterRole:
    """This node's part: the trainer (while it holds the lease) or a follower."""

    def __init__(self, rec: Recommender, node: str) -> None:
        self.rec = rec
        self.node = node
        self.models = ModelStore(rec.room.db)
        self.lease = Lease(rec.room.db, "trainer", node)
        self.trainer = False
        self._retrain_seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-role", daemon=True)

    def take_role(self) -> bool:
        """Whether this node is the trainer (it is, if the lease was free)."""
        self._set_trainer(self.lease.acquire())
        self._retrain_seen = self.models.retrain_requested()
        return self.trainer

    def _set_trainer(self, trainer: bool) -> None:
        """The trainer's node is also the one that integrates the ledger in
        the background (one integrator: the others would only redo its work)."""
        self.trainer = trainer
        self.rec.room.log.integrating = trainer

    def start(self) -> ClusterRole:
        self._thread.start()
        return self

    # -- the trainer ---------------------------------------------------------------

    def published(self, model: Model) -> None:
        """Store the model's artifact and make it the live version of every node."""
        self.models.put(model.version, model.artifact())
        self.models.publish(model.version)
        if self.rec.sync is not None:
            self.rec.sync.announce("model", {"version": model.version})

    def _train_on_requests(self) -> None:
        asked = self.models.retrain_requested()
        if asked > self._retrain_seen and not self.rec.engine.training:
            self._retrain_seen = asked
            self.rec.retrain()
        users = self.models.forget_requests()
        if users:
            for user in users:
                self.rec.forget_in_model(user)
            self.models.forgotten(users)

    # -- a follower ----------------------------------------------------------------

    def follow(self) -> bool:
        """Load the live version if this node serves another: whether it swapped."""
        live = self.models.live()
        if live is None or live == self.rec.engine.live_version:
            return False
        model = self.fetch(live)
        if model is None:  # published and already replaced: the next look finds the newer
            return False
        self.rec.engine.swap(model)  # verified, then the deploy check
        return True

    def fetch(self, version: str) -> Model | None:
        """A model kept in the store (a few before the live one), verified
        against its version: for cursors and replays of the feeds it ranked."""
        blob = self.models.get(version)
        return None if blob is None else Model.from_artifact(blob)

    def wait_for_live(self) -> bool:
        """Until the trainer has published a model (a follower's start); True
        if the trainer went away first and this node took its place."""
        while not self._stop.is_set():
            if self.follow() or self.rec.engine.live_version is not None:
                return False
            if self.take_role():
                return True
            self._stop.wait(TICK_S)
        return False

    def ask_to_retrain(self) -> bool:
        """On a follower: ask the trainer (True); on the trainer: False (train here)."""
        if self.trainer:
            return False
        self.models.request_retrain()
        return True

    def forgotten_here(self, user: str) -> None:
        """A user this node deleted: the trainer forgets them from the model."""
        if not self.trainer:
            self.models.request_forget(user)

    # -- both ----------------------------------------------------------------------

    def tick(self) -> None:
        if self.trainer:
            if self.lease.acquire():
                self._train_on_requests()
                return
            self._set_trainer(False)  # lost it (paused past its expiry): follow from now on
            log.warning("node %s lost the trainer lease", self.node)
        self.follow()
        if self.lease.acquire():  # the trainer is gone: take over, and hold the rows
            self._set_trainer(True)
            log.warning("node %s takes over as the trainer", self.node)
            self.rec.retrain()

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick()
            except Exception:  # the database is away for a moment: the next tick retries
                log.exception("cluster role tick failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        if self.trainer:
            self.lease.release()
