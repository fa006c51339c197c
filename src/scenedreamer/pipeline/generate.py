"""3D-SceneDreamer, stage by stage. This is the one place where the order of stages lives.

    (a) scene context initialisation: first view + depth, neighbour views by warp + inpaint,
        all into the support database; first fit of the unified 3D representation;
    (b) the unified representation (tri-plane NeRF, or 3D Gaussians) fitted to the database;
    (c) progressive generation: for every next camera render the scene, refine the render with a
        frozen diffusion model guided by rendered 3D features through a trained adapter, give the
        new content aligned depth, add the view to the database, update the representation with
        replay of old views;
    (d) local consistency: the warp + inpaint frame of each camera regularises the refiner.

Every step ends with a checkpoint and a commit record (run_folder.py), so a killed run resumes
from its last completed step and ends with the same scene as an uninterrupted one: each step's
randomness comes from its own generator, seeded from (seed, step, purpose).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..events import EventSink, emit
from ..geometry.cameras import Cameras
from ..geometry.trajectory import Trajectory
from ..geometry.trajectory_io import write_transforms_json
from ..memory import release_free_memory
from ..priors.refiner import RefinerInput
from ..representation.base import SceneRepresentation
from ..representation.checkpoint import load_checkpoint, save_checkpoint
from ..representation.fitting import FitState, fit
from ..representation.registry import kind_of
from ..support.database import SupportDatabase
from ..support.records import Provenance, ViewRecord
from . import active_set
from .config import GenerateConfig
from .local_frame import depth_and_backdrop_for_new_view, drop_occluding_points, make_local_frame
from .outputs import export_outputs
from .plan import work_units
from .priors_factory import Priors
from .representation_factory import create_representation, grow_representation
from .run_folder import KEEP_CHECKPOINTS, Progress, RunFolder
from .scene_cameras import initial_neighbour_cameras, load_trajectory

log = logging.getLogger(__name__)

# purposes of per-step random generators (fixed numbers: changing one changes every scene)
_PURPOSES = {"first_view": 1, "inpaint": 2, "refine": 3, "fit": 4, "adapter": 5}


def step_generator(seed: int, step: int, purpose: str) -> torch.Generator:
    """A CPU generator for one purpose of one step: independent of what ran before it."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 1_009 + _PURPOSES[purpose]) % (2**63))


@dataclass
class RunState:
    """What a run carries from step to step (all of it restorable from a step checkpoint)."""

    representation: SceneRepresentation
    """the in-memory part of the world: all of it, or a long world's active set"""
    fit_state: FitState | None
    frozen: Any = None
    """the kind's frozen store (RepresentationKind.frozen_store): the rest of a long world, on
    disk; None for a kind that is always fitted whole"""


def whole_world(state: RunState, planes: torch.Tensor | None = None) -> SceneRepresentation:
    """The whole world as one representation (the active set plus every frozen part; only the
    frozen parts reaching into the region ``planes`` when given: active_region.py)."""
    if state.frozen is None or not state.frozen.chunks:
        return state.representation
    return state.frozen.whole(state.representation, planes)


def generate_scene(config: GenerateConfig, run: RunFolder, priors: Priors, progress: Progress,
                   on_event: EventSink | None = None) -> Path:
    """Run (or resume) the whole method into ``run`` and export its outputs. Returns run.root."""
    device = priors.device
    trajectory = load_trajectory(config)
    write_transforms_json(run.root / "trajectory.json", trajectory)
    database = SupportDatabase.open(run.support_dir, config=config.support)
    try:
        # views of a step that never committed are rolled back; that step runs again
        database.truncate_after_step(progress.last_step)
        state = _restore(run, progress, priors, device)
        total_steps = len(trajectory.cameras)
        # the thread count that runs is recorded with the models (events.jsonl "run" metrics), and
        # the weight of each stage, so a progress bar counts work, not views
        work = work_units(config, total_steps)
        emit(on_event, "run", max(progress.last_step, 0), total_steps,
             "; ".join(f"{role}: {label}" for role, label in priors.describe().items()),
             threads=torch.get_num_threads(), work_init=work.init, work_view=work.view, work_export=work.export)

        if progress.last_step < 0:
            state = initialise_scene_context(config, trajectory, database, priors, on_event)
            state.frozen = kind_of(state.representation).new_frozen_store(run.checkpoints_dir)
            _commit(run, 0, database, state, priors)
            emit(on_event, "view", 1, total_steps, "scene context initialised")

        for step in range(max(progress.last_step, 0) + 1, total_steps):
            generate_next_view(config, step, trajectory, database, state, priors, on_event)
            _commit(run, step, database, state, priors)
            emit(on_event, "view", step + 1, total_steps, f"view {step} added")

        export_outputs(config, run, trajectory, database, whole_world(state), priors, on_event)
    finally:
        database.close()
    return run.root


# (a) ------------------------------------------------------------------------------------------
def initialise_scene_context(config: GenerateConfig, trajectory: Trajectory, database: SupportDatabase,
                             priors: Priors, on_event: EventSink | None) -> RunState:
    """First view I0 (text-to-image) with depth D0, neighbour views around C0 by warp + inpaint
    with aligned depth, all into the support database; then the first fit."""
    prompt0 = trajectory.prompts[0] or config.prompt
    camera0 = trajectory.cameras[0].to(priors.device)
    emit(on_event, "init", 0, 1, "first view")
    image0 = priors.text_to_image.generate(prompt0, camera0, step_generator(config.seed, 0, "first_view"))
    no_depth = torch.zeros(camera0.height, camera0.width, device=priors.device)
    no_known = torch.zeros_like(no_depth, dtype=torch.bool)
    depth0, backdrop0 = depth_and_backdrop_for_new_view(
        image0, camera0, no_depth, no_known, priors.first_depth, config.align, config.seams,
        config.init.first_view_median_depth, config.support.backdrop_depth)
    everything = torch.ones_like(no_known)
    database.add(_record(image0, depth0, everything, no_known, camera0, Provenance.INITIAL, 0, prompt0, backdrop0))

    for i, camera in enumerate(initial_neighbour_cameras(camera0, config.init)):
        emit(on_event, "init", i + 1, 0, "neighbour view")
        views = [database.get(v) for v in database.ids()]
        local = make_local_frame(views, camera, prompt0, priors.inpainter,
                                 step_generator(config.seed, 0, "inpaint"), config.warp)
        depth, backdrop = depth_and_backdrop_for_new_view(
            local.rgb, camera, local.warped_depth, local.known, priors.depth, config.align, config.seams,
            config.init.first_view_median_depth, config.support.backdrop_depth, known_backdrop=local.backdrop,
            stand_in_views=views)
        new = ~local.known
        # a backdrop point is a stand-in, not a surface: it hides nothing an earlier view saw
        valid = ~drop_occluding_points(depth, new & ~backdrop, camera, views, config.progressive.occlusion_margin)
        database.add(_record(local.rgb, depth, valid, new, camera, Provenance.WARP_INPAINT, 0, prompt0, backdrop))

    views = [database.get(v) for v in database.ids()]
    release_free_memory()       # the networks' activations, before the fitting adds its own (memory.py)
    representation = create_representation(config, views, priors.device, trajectory.cameras.centers)
    fit_state = fit(representation, database, config.fit, steps=config.init.fit_steps,
                    generator=step_generator(config.seed, 0, "fit"), on_event=on_event)
    return RunState(representation, fit_state)


# (c) + (d) ------------------------------------------------------------------------------------
def generate_next_view(config: GenerateConfig, step: int, trajectory: Trajectory, database: SupportDatabase,
                       state: RunState, priors: Priors, on_event: EventSink | None) -> None:
    """Render the scene at trajectory camera ``step``, refine it (3D-aware, regularised by the
    local warp + inpaint frame), give new content aligned depth, add the view to the database
    and update the representation with replay."""
    prompt = trajectory.prompts[step] or config.prompt
    camera = trajectory.cameras[step].to(priors.device)
    prog = config.progressive
    # a long world works on the part near the camera (active_set.py): the rest is frozen on disk
    active_ids = None
    if state.frozen is not None and active_set.applies(prog, len(database)):
        active_ids = active_set.activate(state, database, camera, prog, step)

    # render the current scene: far-from-seen parts have floaters, blur and holes
    with torch.no_grad():
        render = state.representation.render(camera)[0]
    unseen = render.opacity[0] < prog.unseen_opacity

    # (d) the local way: warp neighbouring support views + inpaint
    neighbour_ids = database.neighbours(camera, prog.neighbours)
    neighbours = [database.get(v) for v in neighbour_ids]
    local = make_local_frame(neighbours, camera, prompt, priors.inpainter,
                             step_generator(config.seed, step, "inpaint"), config.warp)
    # made up from nothing: what neither the scene's render nor the warp of a support view shows
    # (a pixel the render misses but a support view carries is not a hole of the world)
    blank = float((unseen & ~local.known).float().mean())
    if blank > prog.max_hole_fraction_warn:
        log.warning("view %d: %.0f%% of the view is unseen (neither the scene nor a support view shows it); "
                    "the camera step may be too large", step, 100 * blank)

    # (c) 3D-aware generative refinement (or the local frame alone, as an ablation)
    if config.ablation.refinement:
        view_in = RefinerInput(
            rendered_rgb=render.rgb[0], rendered_depth=render.depth[0], opacity=render.opacity[0],
            features=render.features[0], local_rgb=local.rgb,
            # the real mask always: it also says where the render is trusted and where floaters
            # are detected; --no-consistency switches off only the pull toward the local frame
            # (the refiner's consistency weight, set to 0 in priors_factory)
            local_known=local.known,
            local_depth=local.warped_depth)
        image = priors.refiner.refine(view_in, prompt, step_generator(config.seed, step, "refine"))
        provenance = Provenance.REFINED
    else:
        image = local.rgb
        provenance = Provenance.WARP_INPAINT

    # depth. Known pixels (carried by the warp of support views) keep the warped depth (or, with
    # progressive.render_depth_tolerance > 0, the scene's rendered depth where it agrees with the
    # warp: the render is a little short, so off by default); the new content gets estimated
    # depth, aligned to the known depth and seam-compensated; new points that would hide what
    # earlier views saw are dropped
    warped = local.warped_depth
    render_agrees = render_shows_depth(render.depth[0], ~unseen, warped, prog.render_depth_tolerance)
    # The backdrop keeps the warped stand-in depth: it is no surface the render could sharpen,
    # and the render's blend of sky Gaussians would let the stand-in wander from view to view
    known_depth = torch.where(local.known & render_agrees & ~local.backdrop, render.depth[0], warped)
    depth, backdrop = depth_and_backdrop_for_new_view(image, camera, known_depth, local.known, priors.depth,
                                                      config.align, config.seams,
                                                      config.init.first_view_median_depth,
                                                      config.support.backdrop_depth, known_backdrop=local.backdrop,
                                                      stand_in_views=neighbours)
    new = ~local.known
    earlier = neighbours
    # a backdrop point is a stand-in, not a surface: it hides nothing an earlier view saw
    valid = ~drop_occluding_points(depth, new & ~backdrop, camera, earlier, prog.occlusion_margin)
    record = _record(image, depth, valid, new, camera, provenance, step, prompt, backdrop)
    view_id = database.add(record)
    views = database if active_ids is None else database.subset(active_ids + [view_id])

    # update: grow the representation where the world lacks the view's content, fit with replay
    release_free_memory()       # the refiner's and depth network's activations (memory.py)
    # carried as directions (warp.backdrop_at_infinity) the sky is never new to a view, so it
    # grows where the render leaves it uncovered: the sky Gaussians stay behind the walk
    carried_sky = local.backdrop & valid if config.warp.backdrop_at_infinity else None   # backdrop implies known
    grow = pixels_to_grow(new & valid, depth, render.depth[0], ~unseen, prog.grow_covered_tolerance,
                          carried_backdrop=carried_sky)
    state.fit_state = grow_representation(state.representation, record, grow, state.fit_state, config.fit)
    replay_ids = None if config.ablation.replay else _latest_ids(database, step)
    state.fit_state = fit(state.representation, views, config.fit, steps=prog.fit_steps_per_view,
                          generator=step_generator(config.seed, step, "fit"), state=state.fit_state,
                          on_event=on_event, view_ids=replay_ids)

    # train the adapter on the database (render at a database camera -> adapter -> denoise to it)
    if priors.refiner.adapter is not None and config.refiner.adapter_train_steps_per_view > 0:
        _train_adapter(config, step, views, state, priors, on_event)
        release_free_memory()   # the adapter's backward pass through the UNet


def pixels_to_grow(new: torch.Tensor, depth: torch.Tensor, rendered_depth: torch.Tensor, rendered: torch.Tensor,
                   tolerance: float | None, carried_backdrop: torch.Tensor | None = None) -> torch.Tensor:
    """Where a new view shows content the world lacks: its ``new`` pixels less those the scene's
    render before the view already covers with a surface at the pixel's depth.

    new, rendered (H, W) bool: the view's new (inpainted, valid) pixels, and the pixels the render
    covers (opacity at least progressive.unseen_opacity); depth, rendered_depth (H, W) z-depth in
    scene units (camera frame) of the view and of the render. A pixel is covered when
    |rendered - depth| <= tolerance x depth. ``tolerance`` None: every new pixel grows.

    Why: a new pixel is new to the warp (no support view carried it), not always to the world. A
    sideways step's re-inpainted sky (warp.sight_clearance) lies where the sky Gaussians already
    are; adding one per pixel again, a side walk with the rule on held 731k Gaussians at view 200,
    and 507k at view 213 with this test (BENCHMARKS.md, issue 23).

    ``carried_backdrop`` (H, W) bool or None: backdrop pixels the warp carried as directions
    (warp.backdrop_at_infinity). Those grow too where the render leaves them uncovered: such a
    sky is never new to a view, and without this no sky Gaussian grew after the first views, so
    80 units along a walk the old ones no longer covered the sky (each view's fit fell to
    13-20 dB from view ~200 of the 300-view benchmark)."""
    grow = new if tolerance is None else new & ~render_shows_depth(rendered_depth, rendered, depth, tolerance)
    if carried_backdrop is not None:
        grow = grow | (carried_backdrop & ~rendered)
    return grow


def render_shows_depth(rendered_depth: torch.Tensor, rendered: torch.Tensor, depth: torch.Tensor,
                       tolerance: float) -> torch.Tensor:
    """(H, W) bool: where the scene's render shows a surface at ``depth``: the pixel is rendered
    (``rendered``, opacity at least progressive.unseen_opacity), has a rendered depth, and
    |rendered_depth - depth| <= tolerance x depth. Depths (H, W) z-depth in scene units."""
    return rendered & (rendered_depth > 0) & ((rendered_depth - depth).abs() <= tolerance * depth)


def _train_adapter(config: GenerateConfig, step: int, database, state: RunState,
                   priors: Priors, on_event: EventSink | None) -> None:
    """Test-time training of the adapter: pairs (render at a database camera, database image).
    ``database``: the support database, or the step's active views (SupportDatabase.subset)."""
    gen = step_generator(config.seed, step, "adapter")
    ids = database.sample_replay(config.progressive.adapter_views, gen)

    def pairs():
        for view_id in ids:
            view = database.get(view_id)
            with torch.no_grad():
                r = state.representation.render(view.camera.to(priors.device))[0]
            yield (RefinerInput(rendered_rgb=r.rgb[0], rendered_depth=r.depth[0], opacity=r.opacity[0],
                                features=r.features[0], local_rgb=view.rgb.to(priors.device),
                                local_known=view.valid.to(priors.device)),
                   view.rgb.to(priors.device))

    priors.refiner.train_adapter(pairs(), steps=config.refiner.adapter_train_steps_per_view, generator=gen,
                                 on_event=on_event, prompt=config.prompt)


# bookkeeping ----------------------------------------------------------------------------------
def _latest_ids(database: SupportDatabase, step: int) -> list[int]:
    """Without replay the update sees only the views of the current step."""
    return [v for v in database.ids() if database.view_info(v).step == step]


def _record(rgb, depth, valid, inpainted, camera: Cameras, provenance: Provenance, step: int,
            prompt: str, backdrop: torch.Tensor) -> ViewRecord:
    return ViewRecord(rgb=rgb.detach().float().clamp(0, 1).cpu(), depth=depth.detach().float().cpu(),
                      valid=valid.detach().cpu(), inpainted=inpainted.detach().cpu(),
                      K=camera.K[0].detach().float().cpu(), c2w=camera.c2w[0].detach().float().cpu(),
                      provenance=provenance, step=step, prompt=prompt, backdrop=backdrop.detach().cpu())


def _commit(run: RunFolder, step: int, database: SupportDatabase, state: RunState, priors: Priors) -> None:
    """Write the step's state (representation, fitting state, refiner adapter + optimiser) and
    only then record the step as complete: a kill anywhere before the record leaves the previous
    step committed. The database is flushed first so no checkpoint is newer than its views."""
    database.sync()
    fit_state = state.fit_state or FitState()
    extra = {"step": step, **fit_state.to_extra()}
    refiner_state = priors.refiner_training_state()
    if refiner_state is not None:
        extra["refiner"] = refiner_state
    if state.frozen is not None and not state.frozen.is_empty():
        state.frozen.collect_garbage(step, KEEP_CHECKPOINTS)
        extra["frozen"] = state.frozen.to_extra()
    save_checkpoint(run.checkpoint_path(step), state.representation, optimizer_state=fit_state.optimizer_state,
                    extra=extra)
    run.commit_step(step)


def _restore(run: RunFolder, progress: Progress, priors: Priors, device: torch.device) -> RunState | None:
    """The state after the last committed step (None before initialisation completed)."""
    if progress.last_step < 0:
        return None
    ckpt = load_checkpoint(run.checkpoints_dir / progress.checkpoint, device=device)
    if "refiner" in ckpt.extra:
        priors.load_refiner_training_state(ckpt.extra["refiner"])
    frozen = kind_of(ckpt.representation).new_frozen_store(run.checkpoints_dir, ckpt.extra.get("frozen"))
    return RunState(ckpt.representation, FitState.from_checkpoint(ckpt), frozen)
