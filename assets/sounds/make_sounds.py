import math, struct, wave, sys
from pathlib import Path
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
RATE = 22050
def tone(parts, name):
    frames = bytearray()
    for freq, secs, vol in parts:
        n = int(RATE * secs)
        for i in range(n):
            env = min(1.0, i / (RATE * 0.005), (n - i) / (RATE * 0.02))
            s = vol * env * (math.sin(2 * math.pi * freq * i / RATE) if freq else 0)
            frames += struct.pack("<h", int(s * 32767))
    with wave.open(str(out / name), "wb") as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(RATE); w.writeframes(bytes(frames))
tone([(1760, 0.09, 0.5)], "accepted.wav")
tone([(220, 0.12, 0.5), (0, 0.05, 0), (196, 0.18, 0.5)], "rejected.wav")
tone([(1047, 0.12, 0.4), (1319, 0.12, 0.4), (1568, 0.25, 0.4)], "paid.wav")
