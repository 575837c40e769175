"""A Kerberos initiator through MIT's libgssapi_krb5 (ctypes), for what no client sends on
purpose: the GSSAPI tokens themselves, so a case can record one and send it again.

    token = first_token("kafka@127.0.0.1")    # AP-REQ for the service, from KRB5CCNAME

The tickets come from the credential cache KRB5CCNAME names (kinit first); the KDC from
KRB5_CONFIG. python-gssapi would do the same but needs Kerberos headers to build.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, Structure, byref, c_size_t, c_uint32, c_void_p

GSS_C_MUTUAL_FLAG = 2
GSS_C_SEQUENCE_FLAG = 8


class Buffer(Structure):
    _fields_ = [("length", c_size_t), ("value", c_void_p)]


class Oid(Structure):
    _fields_ = [("length", c_uint32), ("elements", c_void_p)]


class GssError(Exception):
    pass


_lib = None


def _gss():
    global _lib
    if _lib is None:
        lib = ctypes.CDLL("libgssapi_krb5.so.2")
        lib.gss_import_name.argtypes = [POINTER(c_uint32), POINTER(Buffer), POINTER(Oid),
                                        POINTER(c_void_p)]
        lib.gss_init_sec_context.argtypes = [
            POINTER(c_uint32), c_void_p, POINTER(c_void_p), c_void_p, POINTER(Oid), c_uint32,
            c_uint32, c_void_p, POINTER(Buffer), c_void_p, POINTER(Buffer), POINTER(c_uint32),
            POINTER(c_uint32)]
        lib.gss_release_buffer.argtypes = [POINTER(c_uint32), POINTER(Buffer)]
        lib.gss_release_name.argtypes = [POINTER(c_uint32), POINTER(c_void_p)]
        lib.gss_delete_sec_context.argtypes = [POINTER(c_uint32), POINTER(c_void_p), c_void_p]
        for call in ("gss_import_name", "gss_init_sec_context", "gss_release_buffer",
                     "gss_release_name", "gss_delete_sec_context"):
            getattr(lib, call).restype = c_uint32
        _lib = lib
    return _lib


def _oid(name: str) -> POINTER(Oid):
    """One of the library's exported OID constants (a gss_OID variable)."""
    return POINTER(Oid).in_dll(_gss(), name)


def first_token(service: str) -> bytes:
    """The initiator's first token (the AP-REQ) for `service` ("kafka@127.0.0.1"), asking
    for mutual authentication as Kafka's clients do."""
    lib = _gss()
    minor = c_uint32()
    raw = service.encode()
    name_buffer = Buffer(len(raw), ctypes.cast(ctypes.c_char_p(raw), c_void_p))
    target = c_void_p()
    major = lib.gss_import_name(byref(minor), byref(name_buffer),
                                _oid("GSS_C_NT_HOSTBASED_SERVICE"), byref(target))
    if major & 0xFFFF0000:
        raise GssError(f"gss_import_name({service}): major {major:#x} minor {minor.value}")
    context = c_void_p()
    out = Buffer()
    try:
        major = lib.gss_init_sec_context(
            byref(minor), None, byref(context), target, _oid("gss_mech_krb5"),
            GSS_C_MUTUAL_FLAG | GSS_C_SEQUENCE_FLAG, 0, None, None, None, byref(out), None,
            None)
        if major & 0xFFFF0000:
            raise GssError(f"gss_init_sec_context({service}): major {major:#x} "
                           f"minor {minor.value}")
        return ctypes.string_at(out.value, out.length)
    finally:
        lib.gss_release_buffer(byref(minor), byref(out))
        lib.gss_delete_sec_context(byref(minor), byref(context), None)
        lib.gss_release_name(byref(minor), byref(target))
