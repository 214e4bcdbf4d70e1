"""Offline renders stream with bounded memory and stay sample-identical to the whole-signal renders;
write and read failures name the file and the cause and leave nothing half-written."""

from __future__ import annotations

import errno
import math
import os
import subprocess
import uuid

import numpy as np
import pytest
from conftest import real_stereo
from resculpt.dsp.features import SpectralFeatures, analyze, hop_size
from resculpt.dsp.loudness_follow import goal_of
from resculpt.dsp.match_eq import MatchTarget
from resculpt.dsp.profile import (
    EnvelopeAccumulator,
    FormantAccumulator,
    Profile,
    active_frames,
    band_distance_db,
    band_shape_diff,
    fingerprint,
    limit_bandwidth,
    long_term_envelope,
    target_envelope,
)
from resculpt.plugin_host import render
from resculpt.plugin_host.audio_io import read_audio, wav_channel_mask, write_audio
from resculpt.plugin_host.host import process_whole
from resculpt.plugin_host.render import RenderError, render_file

pytestmark = pytest.mark.usefixtures("private_dirs")


def _whole_envelope(x, sr):
    """The long-term envelope from every frame's row held at once (np.mean over the active frames):
    the analyser run over the whole (channels, n) signal in one call, any channel count."""
    cols = SpectralFeatures.columns
    if x.shape[0] <= 2:
        rows = analyze(SpectralFeatures(), x, sr)
    else:
        an = SpectralFeatures()
        an.prepare(sr, x.shape[1], x.shape[0], history_frames=x.shape[1] // hop_size(sr) + 1)
        an.process(x.copy())
        rows = an.history[: an.frames]
    act = active_frames({"level_db": rows[:, cols.index("level_db")]})
    if not act.any():
        return np.full(32, np.nan)
    with np.errstate(invalid="ignore"):
        env = 10.0 * np.log10(np.mean(10.0 ** (rows[act, :32] / 10.0), axis=0))
    return limit_bandwidth(env)


def _whole_target_render(chain, x, sr, target, block, passes=2):
    """The target render on whole arrays: the file held, every pass's output held."""
    env_in = _whole_envelope(x, sr)
    if target.kind == "delta":
        goal = target_envelope(target, Profile("fingerprint", band_env_db=list(env_in)))[0]
    else:
        goal = target.env()
    render.match_stage(chain).prime(env_in)
    measured = render.prime_loudness(chain, render._ArrayInput(x), block)  # the loudness follower's prime and goal
    lin = measured.lufs if measured is not None else None
    lra_aim = lra_goal = render.range_goal(target, measured)
    loud = goal_of(target)
    alone = lin is not None and not chain.layout.post and len(chain.graph.stages) == 1
    want = loud[0] if math.isfinite(loud[0]) else (lin + loud[1] if lin is not None else math.nan)
    eff = goal.copy()
    for p in range(passes):
        ranged = render.prime_range(chain, measured, lra_goal) if math.isfinite(lra_goal) else False
        chain.set_target(MatchTarget.make(eff, delta=False, loudness=loud))
        chain.reset()
        y = process_whole(chain, x, block)
        if p < passes - 1:
            amt = chain.params.get("match.amount")
            if amt >= 0.01:  # the error against the amount's share of the move, in target units
                aim = goal if amt >= 1.0 else env_in + amt * (goal - env_in)
                eff = eff + np.nan_to_num(band_shape_diff(aim, _whole_envelope(y, sr))) / amt
            a = amt * chain.params.get("match.loudness_follow")
            meter = render._loudness_meter(chain, block)
            meter.process(y.astype(np.float64))
            got = meter.latest()["lufs_integrated"]
            if alone and a > 0 and math.isfinite(want) and math.isfinite(got):
                shift = (lin + a * (want - lin) - got) / a
                loud = (loud[0] + shift, loud[1]) if math.isfinite(loud[0]) else (loud[0], loud[1] + shift)
            ar = amt * chain.params.get("match.range_follow")
            if alone and ranged:
                lra_want = measured.lra + ar * (lra_aim - measured.lra)
                lra_goal = render.next_range_goal(lra_goal, measured.lra, meter.latest()["lra_lu"], ar, lra_want)
    return y, band_distance_db(_whole_envelope(y, sr), goal)


@pytest.fixture
def work(tmp_path):
    """A folder of its own (the private XDG folders live beside it in tmp_path)."""
    d = tmp_path / "w"
    d.mkdir()
    return d


def _clip(tmp_path, sr=48000, sec=2.5, name="in.wav"):
    x = real_stereo(sr, sec)
    p = tmp_path / name
    write_audio(p, x, sr)
    return p, read_audio(p)[0]


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_envelope_accumulator_is_bit_identical_to_the_whole_array_envelope_for_any_block_sizes(channels, rng):
    """EnvelopeAccumulator fed in random pieces (1..5000 samples) gives exactly the whole-array envelope,
    and long_term_envelope (which uses it) does too."""
    sr = 48000
    # ``channels`` rows: the stereo pair repeated at other gains (6 channels: 5.1)
    s = real_stereo(sr, 3.0)
    x = np.concatenate([s * np.float32(g) for g in (1.0, 0.7, 0.5)])[:channels].copy()
    x[:, sr : sr + sr // 2] *= 1e-4  # a quiet stretch: some frames fall below the activity threshold
    ref = _whole_envelope(x, sr)
    assert np.isfinite(ref).sum() > 20
    acc = EnvelopeAccumulator(sr, channels)
    i = 0
    while i < x.shape[1]:
        k = int(rng.integers(1, 5000))
        acc.add(x[:, i : i + k])
        i += k
    np.testing.assert_array_equal(acc.result(), ref)
    np.testing.assert_array_equal(long_term_envelope(x, sr), ref)


@pytest.mark.parametrize("channels", [1, 2])
def test_formant_accumulator_gives_the_fingerprints_median_formants_for_any_block_sizes(channels, rng):
    """FormantAccumulator fed in random pieces (1..5000 samples), with the levels of an EnvelopeAccumulator fed the
    same pieces, gives exactly the fingerprint's f1_hz..f3_hz of the whole signal."""
    sr = 48000
    x = real_stereo(sr, 3.0)[:channels].copy()
    x[:, sr : sr + sr // 2] *= 1e-4  # a quiet stretch: frames the activity threshold drops
    ref = fingerprint(x, sr).dims
    acc, facc = EnvelopeAccumulator(sr, channels), FormantAccumulator(sr, channels, 4096)
    i = 0
    while i < x.shape[1]:
        k = int(rng.integers(1, 5000))
        acc.add(x[:, i : i + k])
        facc.add(x[:, i : i + k])
        i += k
    got = facc.result(acc.levels())
    assert all(math.isfinite(got[k]) for k in got)
    assert got == {k: ref[k] for k in ("f1_hz", "f2_hz", "f3_hz")}


@pytest.mark.parametrize("sr", [16000, 44100, 48000])
def test_envelope_accumulator_rows_are_bit_identical_to_the_streaming_analysers_rows(sr, rng):
    """Each frame's band levels and level, computed in batches by EnvelopeAccumulator, equal bit for bit
    the rows the streaming SpectralFeatures analyser computes frame by frame, with non-finite input
    samples and pieces that straddle the batches."""
    x = real_stereo(sr, 3.0)
    x[0, 1000], x[1, 5000], x[:, 9000] = np.nan, np.inf, -np.inf
    cols = SpectralFeatures.columns
    ref = analyze(SpectralFeatures(), x, sr, block=999)
    acc = EnvelopeAccumulator(sr, 2)
    acc.CHUNK = 7001  # batches that end mid-hop and mid-piece
    i = 0
    while i < x.shape[1]:
        k = int(rng.integers(1, 20000))
        acc.add(x[:, i : i + k])
        i += k
    acc.result()
    env, lvl = np.concatenate(acc.store), np.concatenate(acc._levels)
    assert env.shape == (len(ref), 32) and np.isfinite(lvl).all()
    np.testing.assert_array_equal(env, ref[:, :32])
    np.testing.assert_array_equal(lvl, ref[:, cols.index("level_db")])


def test_envelope_accumulator_with_a_file_backed_store_matches_the_in_memory_one(work):
    """The disk row store the render uses gives the same envelope as the in-memory list."""
    sr = 16000
    x = real_stereo(sr, 4.0)
    spill = render._RowSpill(work, work / "o.wav")
    spill.CHUNK_ROWS = 37  # read back in pieces that straddle the appended ones
    acc = EnvelopeAccumulator(sr, 2, spill)
    for i in range(0, x.shape[1], 1000):
        acc.add(x[:, i : i + 1000])
    np.testing.assert_array_equal(acc.result(), _whole_envelope(x, sr))
    spill.close()
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("block", [4096, 777])
def test_target_render_streams_and_is_sample_identical_to_the_whole_file_render(work, block):
    """render --target (two refinement passes) writes exactly what the whole-array algorithm gives, and
    reports the same distance; it reads the input in sweeps of one block."""
    p, x = _clip(work)
    target = Profile(band_env_db=list(long_term_envelope(real_stereo(48000, 2.0, offset_s=6.0), 48000)))
    out = work / "o.wav"
    reads = []
    orig = render._FileInput.sweep

    def counting(self, blk):
        for chunk in orig(self, blk):
            reads.append(chunk.shape[1])
            yield chunk

    render._FileInput.sweep = counting
    try:
        r = render_file(p, out, "podcast-clean", block=block, target=target, amount=1.0, progress=False,
                        engine="match-eq")
    finally:
        render._FileInput.sweep = orig
    assert max(reads) <= block and sum(reads) == 3 * x.shape[1]  # 1 analysis sweep + 2 passes
    chain, _ = render._chain_for("podcast-clean", 48000, 2, block, None, target, 1.0, None)
    want, dist = _whole_target_render(chain, x, 48000, target, block)
    got, _ = read_audio(out)
    np.testing.assert_array_equal(got, want)
    assert r["distance_after_db"] == dist
    assert sorted(f.name for f in work.iterdir()) == ["in.wav", "o.wav"]


def test_context_render_streams_and_is_sample_identical_to_the_whole_file_render(work):
    """render --context (a delta target plus parameters) with the match-EQ engine equals the whole-array render
    (the model's renders: tests/test_resculpt_stage.py)."""
    from resculpt.plugin_host.contexts import get_context

    p, x = _clip(work, sr=44100)
    out = work / "c.wav"
    render_file(p, out, "clean", block=1000, context="call", progress=False, engine="match-eq")
    chain, target = render._chain_for("clean", 44100, 2, 1000, None, None, None, "call")
    if get_context("call").delta is not None:
        want, _ = _whole_target_render(chain, x, 44100, target, 1000)
    else:
        want = process_whole(chain, x, 1000)
    np.testing.assert_array_equal(read_audio(out)[0], want)


def test_input_that_changes_while_it_is_read_is_refused_and_leaves_no_output(work, monkeypatch):
    """A file whose size or modification time moves between the sweeps of a target render gives a
    RenderError naming it; no output and no partial file remain."""
    p, x = _clip(work)
    out = work / "o.wav"
    orig = render._sweep

    def growing(*a, **k):
        with open(p, "ab") as f:  # another program still writing the input
            f.write(b"\0" * 64)
        return orig(*a, **k)

    monkeypatch.setattr(render, "_sweep", growing)
    with pytest.raises(RenderError, match=f"{p}: the input changed while it was read"):
        render_file(p, out, "clean", target=Profile(band_env_db=list(long_term_envelope(x, 48000))),
                    progress=False)
    assert sorted(f.name for f in work.iterdir()) == ["in.wav"]


def test_input_touched_during_a_plain_render_is_refused(work, monkeypatch):
    """The one-sweep render checks the input after reading it too."""
    p, _ = _clip(work)
    orig = render._sweep

    def touched(*a, **k):
        st = os.stat(p)
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        return orig(*a, **k)

    monkeypatch.setattr(render, "_sweep", touched)
    with pytest.raises(RenderError, match="changed while it was read"):
        render_file(p, work / "o.wav", "clean", progress=False)
    assert sorted(f.name for f in work.iterdir()) == ["in.wav"]


@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 KiB tmpfs (needs root and mount rights; skipped otherwise)."""
    mnt = tmp_path / f"full-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True, text=True,
                       check=False)
    if r.returncode:
        pytest.skip(f"mount refused: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.parametrize("target", [False, True])
def test_disk_full_names_the_output_and_the_cause_and_leaves_nothing(work, tiny_fs, target):
    """Rendering 2.5 s of 48 kHz stereo float (960 kB) onto a 64 KiB file system: the error says which
    file and 'disk full'; the folder is left empty."""
    p, x = _clip(work)
    out = tiny_fs / "o.wav"
    kw = {"target": Profile(band_env_db=list(long_term_envelope(x, 48000)))} if target else {}
    with pytest.raises(RenderError) as e:
        render_file(p, out, "clean", progress=False, **kw)
    assert str(e.value).startswith(f"{out}: ") and "disk full" in str(e.value)
    assert list(tiny_fs.iterdir()) == []


def test_output_folder_that_is_a_file_or_under_a_file_is_named(work):
    p, _ = _clip(work)
    blocker = work / "notafolder"
    blocker.write_text("x")
    with pytest.raises(RenderError, match="output folder .*notafolder is a file"):
        render_file(p, blocker / "o.wav", "clean", progress=False)
    with pytest.raises(RenderError, match="cannot create the output folder"):
        render_file(p, blocker / "sub" / "o.wav", "clean", progress=False)
    (work / "dir.wav").mkdir()
    with pytest.raises(RenderError, match="dir.wav: is a folder"):
        render_file(p, work / "dir.wav", "clean", progress=False)


def test_missing_output_folder_is_created(work):
    p, x = _clip(work)
    out = work / "a" / "b" / "o.wav"
    render_file(p, out, "clean", progress=False)
    np.testing.assert_array_equal(read_audio(out)[0], x)


def test_path_too_long_is_named(work):
    p, _ = _clip(work)
    out = work / ("n" * 260 + ".wav")
    with pytest.raises(RenderError, match=r"path too long"):
        render_file(p, out, "clean", progress=False)


def test_permission_denied_is_named_for_output_and_input(work, monkeypatch):
    """Root ignores file modes, so the OS error is injected at the open call."""
    p, _ = _clip(work)
    real_open = open

    def deny(path, *a, **k):
        if str(path).endswith(".partial.wav") or str(path) == str(p):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(render, "open", deny, raising=False)
    with pytest.raises(RenderError, match=f"{p}: cannot read: permission denied"):
        render_file(p, work / "o.wav", "clean", progress=False)


def test_permission_denied_on_the_output_file_or_its_folder_is_named(work, monkeypatch):
    """The output's temporary file refused (EACCES at open) or its folder not creatable (EACCES at
    mkdir): the error names the output, the folder where it is the folder, and 'permission denied';
    nothing is left behind."""
    from pathlib import Path

    p, _ = _clip(work)
    out = work / "o.wav"
    real_open = open

    def deny(path, *a, **k):
        if str(path).endswith(".partial.wav"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(render, "open", deny, raising=False)
    with pytest.raises(RenderError, match=f"^{out}: cannot write: permission denied$"):
        render_file(p, out, "clean", progress=False)
    monkeypatch.undo()
    real_mkdir = Path.mkdir

    def no_mkdir(self, *a, **k):
        if self.name == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", no_mkdir)
    out = work / "locked" / "o.wav"
    with pytest.raises(RenderError, match=f"^{out}: cannot create the output folder {work / 'locked'}: permission denied$"):
        render_file(p, out, "clean", progress=False)
    assert sorted(f.name for f in work.iterdir()) == ["in.wav"]


@pytest.mark.parametrize("target", [False, True])
def test_input_deleted_while_it_is_rendered_is_named_and_leaves_no_output(work, monkeypatch, target):
    """The input removed before a sweep opens it (another program moved it away between the passes):
    the error names it and says it disappeared while it was read; no output is left."""
    p, x = _clip(work)
    orig = render._sweep

    def deleting(*a, **k):
        p.unlink()
        return orig(*a, **k)

    monkeypatch.setattr(render, "_sweep", deleting)
    kw = {"target": Profile(band_env_db=list(long_term_envelope(x, 48000)))} if target else {}
    with pytest.raises(RenderError, match=f"^{p}: the input disappeared while it was read \\(no such file or folder\\)$"):
        render_file(p, work / "o.wav", "clean", progress=False, **kw)
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("fail_at", [3, 40])
def test_write_error_names_the_cause_and_removes_the_partial_file(work, monkeypatch, fail_at):
    """An OSError raised by the file write (here EIO, injected at the header's 3rd write or the 40th
    write, among the audio blocks) ends the render with the output's name and the cause; the
    temporary file is gone."""
    p, _ = _clip(work)
    out = work / "o.wav"
    real_open = open

    class Flaky:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, b):
            self.n += 1
            if self.n >= fail_at:
                raise OSError(errno.EIO, "Input/output error")
            return self.f.write(b)

        def __getattr__(self, k):
            return getattr(self.f, k)

    def flaky_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return Flaky(f) if "w" in mode else f

    monkeypatch.setattr(render, "open", flaky_open, raising=False)
    with pytest.raises(RenderError, match=f"{out}: cannot write: input/output error"):
        render_file(p, out, "clean", block=512, progress=False)
    assert sorted(f.name for f in work.iterdir()) == ["in.wav"]


def test_read_only_file_system_is_named(work):
    """A real read-only mount (skipped where mount is refused)."""
    p, _ = _clip(work)
    mnt = work / "ro"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(mnt)], capture_output=True,
                       text=True, check=False)
    if r.returncode:
        pytest.skip(f"mount refused: {r.stderr.strip()}")
    try:
        with pytest.raises(RenderError, match=f"{mnt / 'o.wav'}: cannot write: read-only file system"):
            render_file(p, mnt / "o.wav", "clean", progress=False)
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_wav_channel_mask_reads_the_extensible_header(tmp_path):
    from pedalboard.io import AudioFile

    with AudioFile(str(tmp_path / "six.wav"), "w", 48000, 6, bit_depth=32) as f:
        f.write(np.zeros((6, 10), np.float32))
    assert wav_channel_mask(tmp_path / "six.wav") == 0x3F
    write_audio(tmp_path / "two.wav", np.zeros((2, 10), np.float32), 48000)
    assert wav_channel_mask(tmp_path / "two.wav") is None


# -- stems beyond stereo --------------------------------------------------------------------------
GAINS = np.array([1.0, 0.5, 0.25, 2.0, 0.1, 0.7, 1.3, 0.05], np.float32)


def _stem(work, channels, mask=None, sr=48000, sec=2.0, name="stem.wav"):
    """Channel k = GAINS[k] x one speech signal, as a WAV (WAVE_FORMAT_EXTENSIBLE) with speaker ``mask``."""
    from resculpt.plugin_host.audio_io import set_wav_channel_mask

    x = (GAINS[:channels, None] * real_stereo(sr, sec)[:1]).astype(np.float32)
    p = work / name
    write_audio(p, x, sr)
    if mask is not None:
        with open(p, "r+b") as f:
            assert set_wav_channel_mask(f, mask)
    return p, read_audio(p)[0]


def _image_error(y):
    """Largest |y_k / g_k - y_0| relative to max |y_0|: 0 when every channel is the same scaled copy."""
    g = GAINS[: y.shape[0], None]
    return float(np.abs(y / g - y[:1]).max() / np.abs(y[0]).max())


def test_six_channel_stem_renders_linked_by_default_and_keeps_its_speaker_mask(work):
    """A 5.1 (side) stem whose channels are scaled copies: the spectral gate, linked by default, applies
    one gain curve to all six (copies stay copies); --unlinked gates each channel on its own level
    (they drift apart). The WAV's speaker mask 0x60F comes through unchanged."""
    p, x = _stem(work, 6, mask=0x60F)
    out = work / "o.wav"
    render_file(p, out, "gate-residue", progress=False)
    y, sr = read_audio(out)
    assert y.shape == x.shape and sr == 48000 and np.isfinite(y).all()
    assert np.abs(y - x).max() > 1e-3  # the gate acted
    assert _image_error(y) < 1e-5
    assert wav_channel_mask(out) == 0x60F
    render_file(p, out, "gate-residue", progress=False, linked=False)
    assert _image_error(read_audio(out)[0]) > 1e-2


def test_eight_channel_stem_through_boards_runs_every_channel(work):
    """7.1 through a preset with boards (compressor, reverb, limiter) and a spectral stage: each channel
    runs its own plugin instances (the reverb acts on all eight, which pedalboard's own reverb does
    not above stereo); the speaker mask of 7.1 surround (0x63F) is kept."""
    p, x = _stem(work, 8, mask=0x63F)
    out = work / "o.wav"
    render_file(p, out, "spectral-dark", progress=False)
    y, _ = read_audio(out)
    assert y.shape == x.shape and np.isfinite(y).all()
    for k in range(8):
        assert np.abs(y[k] - x[k]).max() > 1e-3 * GAINS[k], f"channel {k} unprocessed"
    assert wav_channel_mask(out) == 0x63F


def test_flac_output_keeps_the_speaker_mask_as_the_vorbis_comment_ffmpeg_reads(work):
    """WAV 5.1 (side) in, WAV and FLAC out: the WAV keeps the mask 0x60F in its extensible header, the
    FLAC as its WAVEFORMATEXTENSIBLE_CHANNEL_MASK comment (ffprobe reads the layout from it), with the
    WAV render's audio to 24-bit precision, and rendering that FLAC to WAV carries the mask back into the
    WAV's extensible header. A FLAC from an input without a mask gets no comment."""
    import shutil

    from resculpt.plugin_host.audio_io import flac_channel_mask

    p, _ = _stem(work, 6, mask=0x60F, sec=1.0)
    render_file(p, work / "o.wav", "clean", progress=False)
    render_file(p, work / "o.flac", "clean", progress=False)
    assert wav_channel_mask(work / "o.wav") == 0x60F
    assert flac_channel_mask(work / "o.flac") == 0x60F
    y_wav, y_flac = read_audio(work / "o.wav")[0], read_audio(work / "o.flac")[0]
    # 24-bit FLAC holds -1..1 (the stem's x2 channel clips there; the float WAV does not)
    assert y_flac.shape == y_wav.shape and np.abs(y_flac - np.clip(y_wav, -1.0, 1.0)).max() < 2.0 ** -22
    if shutil.which("ffprobe"):
        r = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=channel_layout", "-of", "csv=p=0",
                            str(work / "o.flac")], capture_output=True, text=True, check=True)
        assert r.stdout.strip() == "5.1(side)"
    render_file(work / "o.flac", work / "back.wav", "clean", progress=False)
    assert wav_channel_mask(work / "back.wav") == 0x60F
    render_file(work / "o.flac", work / "o2.flac", "clean", progress=False)
    assert flac_channel_mask(work / "o2.flac") == 0x60F
    write_audio(work / "plain.flac", y_wav, 48000)
    render_file(work / "plain.flac", work / "o3.flac", "clean", progress=False)
    assert flac_channel_mask(work / "o3.flac") is None


def test_set_flac_channel_mask_grows_replaces_and_shrinks_the_metadata_keeping_the_audio(work, monkeypatch):
    """Adding the comment moves the audio frames back, a shorter replacement moves them forward (here
    37 bytes at a time, so the moves overlap); each time the file decodes to the same samples and
    holds exactly one mask comment."""
    from resculpt.plugin_host import audio_io
    from resculpt.plugin_host.audio_io import (
        _flac_blocks,
        _vorbis_comments,
        flac_channel_mask,
        set_flac_channel_mask,
    )

    monkeypatch.setattr(audio_io, "_COPY_BYTES", 37)
    x = (0.1 * np.random.default_rng(3).standard_normal((3, 20000))).astype(np.float32)
    p = work / "x.flac"
    write_audio(p, x, 48000)
    ref = read_audio(p)[0]
    size0 = p.stat().st_size
    assert flac_channel_mask(p) is None
    for mask in (0x1234567, 0x107, 0x107):
        with open(p, "r+b") as f:
            assert set_flac_channel_mask(f, mask)
        assert flac_channel_mask(p) == mask
        np.testing.assert_array_equal(read_audio(p)[0], ref)
        with open(p, "rb") as f:
            blocks, _ = _flac_blocks(f)
        comments = [c for kind, b in blocks if kind == 4 for c in _vorbis_comments(b)[1]]
        assert sum(c.startswith(b"WAVEFORMATEXTENSIBLE_CHANNEL_MASK=") for c in comments) == 1
    assert p.stat().st_size == size0 + 4 + len("WAVEFORMATEXTENSIBLE_CHANNEL_MASK=0x0107")
    with open(work / "x.wav", "w+b") as f:
        f.write(b"RIFF")
        assert not set_flac_channel_mask(f, 0x3F)


def test_nine_channels_are_refused_with_the_limit(work):
    x = np.zeros((9, 4800), np.float32)
    p = work / "nine.wav"
    write_audio(p, x, 48000)
    with pytest.raises(RenderError, match=r"nine.wav: 9 channels; Resculpt renders up to 8"):
        render_file(p, work / "o.wav", "clean", progress=False)


def test_six_channel_target_render_streams_and_equals_the_whole_array_render(work):
    """The target render of a 6-channel stem (one analysis of the channel mean, linked match-EQ) is
    sample-identical to the whole-array algorithm."""
    p, x = _stem(work, 6)
    target = Profile(band_env_db=list(long_term_envelope(real_stereo(48000, 2.0, offset_s=6.0), 48000)))
    out = work / "o.wav"
    r = render_file(p, out, "podcast-clean", target=target, progress=False, engine="match-eq")
    chain, _ = render._chain_for("podcast-clean", 48000, 6, 4096, None, target, None, None)
    want, dist = _whole_target_render(chain, x, 48000, target, 4096)
    np.testing.assert_array_equal(read_audio(out)[0], want)
    assert r["distance_after_db"] == dist and r["channels"] == 6


def test_a_failing_file_in_a_multi_file_render_names_itself_and_the_others_still_render(work, tiny_fs, capsys):
    """`render bad good --out-dir D`: the error line names the file that is not audio, the good one is
    written, exit code 1; a render onto a full disk names the output and the cause and leaves nothing."""
    from resculpt.cli import main

    good, x = _clip(work, sec=0.3, name="good.wav")
    bad = work / "bad.wav"
    bad.write_bytes(b"not audio at all" * 10)
    out = work / "out"
    assert main(["render", str(bad), str(good), "--out-dir", str(out), "-q"]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: cannot decode audio" in err and "1 of 2" in err
    np.testing.assert_array_equal(read_audio(out / "good.wav")[0], x)
    assert main(["render", str(good), "--out-dir", str(tiny_fs), "-q"]) == 1
    assert f"{tiny_fs / 'good.wav'}: cannot write: disk full" in capsys.readouterr().err
    from resculpt.plugin_host.batch import LOCK_NAME, MANIFEST_NAME

    # Only the batch's own bookkeeping is left: no output, no partial or staged audio file.
    assert sorted(p.name for p in tiny_fs.iterdir()) in ([], [LOCK_NAME], sorted([LOCK_NAME, MANIFEST_NAME]))


def test_read_audio_max_seconds_reads_only_the_start(work):
    p, x = _clip(work, sec=1.0)
    y, sr = read_audio(p, max_seconds=0.25)
    np.testing.assert_array_equal(y, x[:, : sr // 4])


def test_every_kth_frame_reads_the_same_frames_of_both_row_sets_across_store_chunks(monkeypatch):
    """A long render's brightness tilt reads every k-th frame (at most TILT_MAX_FRAMES): the brightness rows and the
    band rows, whose store holds them in chunks of any size, give the same frames."""
    monkeypatch.setattr(render, "TILT_MAX_FRAMES", 7)
    n = 50
    bright = np.arange(n, dtype=float)[:, None].repeat(4, axis=1)
    bands = np.arange(n, dtype=float)[:, None].repeat(32, axis=1)
    store = [bands[0:13], bands[13:14], bands[14:40], bands[40:50]]
    b, e = render._every_kth_frame(bright, store)
    assert len(b) <= 7 and np.array_equal(b[:, 0], e[:, 0]) and b[1, 0] - b[0, 0] == math.ceil(n / 7)
