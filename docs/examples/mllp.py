# mllp.py: an example protocol pack, HL7 v2 over MLLP (TCP port 2575), each message
# framed as 0x0B <segments> 0x1C 0x0D.   Run: dicomwire expert -p mllp CAPTURE
from dicomwire.expert import ExpertField
from dicomwire.hookspecs import hookimpl

PORT, START, END, MAX_FRAME = 2575, b"\x0b", b"\x1c\r", 1 << 20


@hookimpl
def dicomwire_expert_fields():
    return [ExpertField("mllp.nack", "warn", "response-code", "HL7 message refused (MSA-1 AE/AR)"),
            ExpertField("mllp.junk", "error", "malformed", "Bytes outside an MLLP frame")]


@hookimpl
def dicomwire_stream_dissector(stream, host):
    if stream.server[1] == PORT:            # else None: not ours, another pack may take it
        return MllpStream(stream, host.expert)


class MllpStream:
    """One TCP stream; the engine calls data, gap and close, nothing else."""

    def __init__(self, stream, expert):
        self.stream, self.expert = stream, expert
        self.buf, self.lost = (bytearray(), bytearray()), [False, False]

    def data(self, direction, offset, payload, frame, ts):
        buf = self.buf[direction]
        buf += payload                      # payload: a view, valid only during this call
        while (end := buf.find(END)) >= 0:
            junk, start, message = bytes(buf[:end]).partition(START)
            del buf[:end + len(END)]
            if (junk or not start) and not self.lost[direction]:
                self.report("mllp.junk", f"{len(junk)} bytes outside a frame", frame)
            self.lost[direction] = False
            for f in (s.decode("latin-1").split("|") for s in message.split(b"\r")):
                if f[0] == "MSA" and len(f) > 2 and f[1] in ("AE", "AR"):
                    self.report("mllp.nack", f"message {f[2]} refused ({f[1]})", frame)
        if len(buf) > MAX_FRAME:            # hostile input: memory stays bounded
            self.report("mllp.junk", f"no frame end in {len(buf)} bytes", frame)
            buf.clear()

    def gap(self, direction, offset, size, frame, ts):
        self.buf[direction].clear()         # never glue bytes across a hole,
        self.lost[direction] = True         # nor call what it cut off malformed

    def close(self):
        pass

    def report(self, name, text, frame):
        self.expert.report(name, text, frames=[frame], stream=self.stream.id)
