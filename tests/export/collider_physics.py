"""A physics engine (pybullet, pinned in the test extra) walking a capsule on a collider GLB,
and the procedural world's exact ground: shared by tests/export/test_collider*.py and
benchmarks/bench_collider.py. Nothing here uses the collider code: the GLB is read by
tests/export/zbuffer.py's own reader. Frames: the GLB's (glTF, +y up)."""

from __future__ import annotations

import numpy as np
import torch

CAPSULE_HEIGHT = 1.6            # the walker: 1.6 m tall, 0.2 m radius (scene units = metres)
CAPSULE_RADIUS = 0.2
SIM_HZ = 240                    # pybullet's default time step
SETTLE_S = 2.0                  # "comes to rest within 2 s of simulated time"
REST_SPEED = 0.05               # m/s: at rest (a falling capsule moves ~1 m/s after 5 cm)


def exact_ground_y_up(world, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The procedural world's exact walkable surface height (+y up) under glTF points (x, z):
    terrain or the lake's surface where that is higher, or the flat ground plane / floor."""
    sc = world.scene
    wx, wz = np.asarray(x, np.float64), -np.asarray(z, np.float64)   # glTF -> world: (x, -y, -z)
    if sc.terrain is not None:
        y = sc.terrain.surface_y(torch.tensor(wx, dtype=torch.float32),
                                 torch.tensor(wz, dtype=torch.float32)).double().numpy()
    else:
        y = np.full(wx.shape, float(sc.ground_plane_y if sc.ground_plane_y is not None else world.config.ground_height))
    if sc.water_y is not None:
        y = np.minimum(y, sc.water_y)            # world +y down: the higher of lake surface and bed
    return -y


class Physics:
    """A pybullet DIRECT world holding the collider (V (N, 3), F (M, 3)) as a static concave
    triangle mesh, gravity -y."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        import pybullet as pb

        self.pb = pb
        self.cid = pb.connect(pb.DIRECT)
        pb.setGravity(0, -9.81, 0, physicsClientId=self.cid)
        shape = pb.createCollisionShape(pb.GEOM_MESH, vertices=np.asarray(vertices, float).tolist(),
                                        indices=np.asarray(faces, int).reshape(-1).tolist(),
                                        flags=pb.GEOM_FORCE_CONCAVE_TRIMESH, physicsClientId=self.cid)
        pb.createMultiBody(0, shape, physicsClientId=self.cid)
        # pybullet's capsule height is its cylinder part: total = height + 2 radius
        self.capsule = pb.createCollisionShape(pb.GEOM_CAPSULE, radius=CAPSULE_RADIUS,
                                               height=CAPSULE_HEIGHT - 2 * CAPSULE_RADIUS, physicsClientId=self.cid)

    def close(self) -> None:
        self.pb.disconnect(self.cid)

    def floor(self, x: float, z: float, above: float) -> float | None:
        """Height of the first collider surface met by a ray straight down from (x, above, z)."""
        hit = self.pb.rayTest([x, above, z], [x, above - 100.0, z], physicsClientId=self.cid)[0]
        return None if hit[0] < 0 else float(hit[3][1])

    def drop(self, x: float, z: float, feet: float) -> tuple[float, float]:
        """Drop an upright capsule with its feet at height ``feet`` over (x, z); after SETTLE_S
        simulated seconds return (feet height, speed m/s). Its inertia is made huge so it stays
        upright, as a game's character controller keeps it (a free capsule tips over on a slope)."""
        pb = self.pb
        upright = pb.getQuaternionFromEuler([np.pi / 2, 0, 0])          # capsule axis z -> y
        body = pb.createMultiBody(70.0, self.capsule, basePosition=[x, feet + CAPSULE_HEIGHT / 2, z],
                                  baseOrientation=upright, physicsClientId=self.cid)
        pb.changeDynamics(body, -1, localInertiaDiagonal=[1e9, 1e9, 1e9], physicsClientId=self.cid)
        for _ in range(int(SETTLE_S * SIM_HZ)):
            pb.stepSimulation(physicsClientId=self.cid)
        pos, _ = pb.getBasePositionAndOrientation(body, physicsClientId=self.cid)
        vel, _ = pb.getBaseVelocity(body, physicsClientId=self.cid)
        pb.removeBody(body, physicsClientId=self.cid)
        return pos[1] - CAPSULE_HEIGHT / 2, float(np.linalg.norm(vel))
