"""Made-up media for `evidence demo`: footage with sound, a photo, a visit record.

Footage is H.264 video with AAC sound in an MP4 (the moov atom first, so a
browser can start playing before the whole file is there): what a body camera
sends and what a browser plays. It is encoded with the libx264 and AAC encoders
of the FFmpeg that PyAV's wheels ship; nothing is fetched.
"""

from __future__ import annotations

import json
import math
import struct
from fractions import Fraction
from pathlib import Path

import av

from evidence.errors import ConfigError

FPS = 24
AUDIO_RATE = 44_100
AAC_FRAME = 1024  # samples per AAC frame
TONE_HZ = 440.0
TONE_LEVEL = 0.2  # of full scale: audible, not loud


def _encoder(name: str) -> None:
    try:
        av.codec.Codec(name, "w")
    except av.FFmpegError as exc:
        raise ConfigError(
            f"this FFmpeg (PyAV {av.__version__}) has no {name} encoder: cannot make demo footage"
        ) from exc


def write_footage(path: Path, seconds: int = 3, size: tuple[int, int] = (320, 240)) -> None:
    """An H.264/AAC MP4 of `seconds` at `path`: moving bands, and a 440 Hz tone that beeps.

    Written to a file, not to memory: moving the moov atom to the front reads it back.
    """
    _encoder("libx264")
    _encoder("aac")
    width, height = size
    with av.open(
        str(path), mode="w", format="mp4", options={"movflags": "+faststart"}
    ) as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        video.time_base = Fraction(1, FPS)
        audio = container.add_stream("aac", rate=AUDIO_RATE)
        audio.layout = "mono"
        for i in range(seconds * FPS):
            frame = av.VideoFrame(width, height, "yuv420p")
            for n, plane in enumerate(frame.planes):
                if n == 0:  # luma: bands that move one step a frame
                    row = bytes(((x + 4 * i) // 16 % 2) * 160 + 48 for x in range(plane.line_size))
                    plane.update(row * (plane.buffer_size // plane.line_size))
                else:  # chroma: a hue that drifts over the clip
                    plane.update(bytes([(96 + 8 * n + i) % 256]) * plane.buffer_size)
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode())
        for start in range(0, seconds * AUDIO_RATE, AAC_FRAME):
            samples = [
                TONE_LEVEL * math.sin(2 * math.pi * TONE_HZ * t / AUDIO_RATE)
                if (t // (AUDIO_RATE // 2)) % 2 == 0  # half a second on, half off
                else 0.0
                for t in range(start, start + AAC_FRAME)
            ]
            sound = av.AudioFrame(format="fltp", layout="mono", samples=AAC_FRAME)
            sound.planes[0].update(struct.pack(f"<{AAC_FRAME}f", *samples))
            sound.sample_rate = AUDIO_RATE
            sound.pts = start
            container.mux(audio.encode(sound))
        container.mux(audio.encode())


def photo(size: tuple[int, int] = (320, 240)) -> bytes:
    """A PNG: a diagonal gradient."""
    width, height = size
    frame = av.VideoFrame(width, height, "rgb24")
    plane = frame.planes[0]
    rows = b"".join(
        bytes(
            value
            for x in range(plane.line_size // 3)
            for value in ((x + y) % 256, (2 * y) % 256, 200)
        ).ljust(plane.line_size, b"\0")
        for y in range(height)
    )
    plane.update(rows)
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "rgb24"
    codec.time_base = Fraction(1, 1)
    packets = [*codec.encode(frame), *codec.encode(None)]
    return b"".join(bytes(p) for p in packets)


def visit_record(case_reference: str, visited_at: str) -> bytes:
    """A visit record as a device's form would send it (JSON; every value made up)."""
    record = {
        "case_reference": case_reference,
        "visited_at": visited_at,
        "child_seen": True,
        "child_seen_alone": True,
        "home_conditions": "Warm and clean. Food in the kitchen.",
        "notes": "Demo record: made up by `evidence demo`.",
    }
    return (json.dumps(record, indent=2) + "\n").encode("utf-8")
