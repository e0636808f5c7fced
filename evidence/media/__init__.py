"""Media: probing untrusted content against what its manifest declares (`probe`), and
(next) the pure ffmpeg argument builder of review copies.
"""
