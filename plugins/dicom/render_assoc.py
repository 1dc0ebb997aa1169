"""Text for people, one association's negotiation: the ``assoc`` command.

The A-ASSOCIATE exchange as DCMTK and pynetdicom debug logs lay it out:
implementation, AE titles, maximum PDU lengths, each presentation context
with its proposed and accepted (or inferred, or unknown) transfer syntax,
role selection, extended negotiation, user identity (secrets masked), and
how the association ended. Apart from ``render.py`` (per-PDU text) because
it reads the whole :class:`~dicomwire.plugins.dicom.model.Association`,
once, after the pass.
"""

from __future__ import annotations

from dicomwire.plugins.dicom.render import plain, uid_name
from dicomwire.specs.dicom import tables


def association_dump(a, show_secrets: bool = False) -> str:
    """The negotiation in the layout of DCMTK / pynetdicom debug logs."""
    lines = []
    w = lines.append
    if not a.negotiated:
        w(f"Association {a.id}: negotiation not captured (the capture began later)")
    else:
        w(f"Association {a.id}: {a.label()}  (A-ASSOCIATE-RQ frame {a.rq_frame})")
    w("====================== BEGIN A-ASSOCIATE-RQ =====================")
    if a.negotiated:
        impl_uid, impl_ver = a.implementation[0] or (None, None)
        w(f"Our Implementation Class UID:      {impl_uid or ''}")
        w(f"Our Implementation Version Name:   {impl_ver or ''}")
        w(f"Their Implementation Class UID:    {(a.implementation[1] or (None,))[0] or ''}")
        w(f"Their Implementation Version Name: {(a.implementation[1] or (None, None))[1] or ''}")
        w(f"Application Context Name:    {a.application_context or ''}")
        w(f"Calling Application Name:    {a.calling_ae or ''}")
        w(f"Called Application Name:     {a.called_ae or ''}")
        w(f"Requestor Max PDU length:    {a.max_pdu[0] if a.max_pdu[0] is not None else ''}")
        w(f"Acceptor Max PDU length:     {a.max_pdu[1] if a.max_pdu[1] is not None else ''}")
    w("Presentation Contexts:")
    for cid in sorted(a.contexts):
        pc = a.contexts[cid]
        if pc.result is None:
            result = "(not answered)" if a.ac is not None or not a.negotiated else "(Proposed)"
        else:
            result = "(" + tables.PCTX_RESULTS.get(pc.result, f"result {pc.result}") + ")"
        w(f"  Context ID:        {cid} {result}")
        if pc.abstract_syntax:
            w(f"    Abstract Syntax: ={uid_name(pc.abstract_syntax) or pc.abstract_syntax}")
        if pc.transfer_syntaxes:
            w("    Proposed Transfer Syntax(es):")
            for ts in pc.transfer_syntaxes:
                w(f"      ={uid_name(ts) or ts}")
        if pc.transfer_syntax and pc.result not in (1, 2, 3, 4):   # a rejection names none
            how = " (inferred from the data)" if pc.inferred else ""
            w(f"    Accepted Transfer Syntax: ={uid_name(pc.transfer_syntax) or pc.transfer_syntax}{how}")
        elif pc.inference is not None:
            # Not negotiated in the capture and not proven by the data: no guess.
            missed = "negotiation" if not a.negotiated else "acceptance"
            w(f"    Accepted Transfer Syntax: unknown ({missed} not captured; the data did "
              f"not prove one)")
            w(f"      ({pc.inference.why})")
    if a.roles:
        w("Requested/Accepted SCP/SCU Role Selection:")
        for uid, (rq, ac) in a.roles.items():
            w(f"  {uid_name(uid) or uid}: requested {rq}, accepted {ac}")
    if a.async_window[0] or a.async_window[1]:
        w(f"Asynchronous Operations Window: requested {a.async_window[0]}, "
          f"accepted {a.async_window[1]}")
    for uid, (rq, ac) in a.extended.items():
        w(f"SOP Class Extended Negotiation: {uid_name(uid) or uid}: requested "
          f"{rq.hex() if rq else '-'}, accepted {ac.hex() if ac else '-'}")
    for uid, (svc, related) in a.common_extended.items():
        w(f"SOP Class Common Extended Negotiation: {uid_name(uid) or uid}: service class "
          f"{uid_name(svc) or svc}" + (f", related {', '.join(related)}" if related else ""))
    if a.user_identity is not None:
        ui = plain(a.user_identity, show_secrets)
        w("User Identity: " + ", ".join(f"{k}={v}" for k, v in ui.items()
                                         if not k.endswith("_length") and k != "trailing"))
        if a.user_identity_ac is not None:
            w("User Identity accepted (server response present)")
    w("======================= END A-ASSOCIATE-RQ ======================")
    if a.rj is not None:
        d = a.rj
        w("Association Rejected: " + tables.reject_text(d.body.result, d.body.source, d.body.reason))
    elif a.ac is not None:
        w("Association Accepted")
    if a.end:
        w(f"Association end: {a.end}")
    return "\n".join(lines)
