//! The few GSS-API calls a Kerberos acceptor needs, from MIT's
//! libgssapi_krb5 loaded at run time: a broker without GSSAPI listeners never
//! needs the library, and building Sluice needs no Kerberos headers.

use libloading::Library;
use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

pub type Status = u32;
pub type Name = *mut c_void;
pub type Context = *mut c_void;
pub type Credential = *mut c_void;

#[repr(C)]
pub struct Buffer {
    pub length: usize,
    pub value: *mut c_void,
}

impl Buffer {
    pub fn empty() -> Buffer {
        Buffer {
            length: 0,
            value: std::ptr::null_mut(),
        }
    }

    /// A buffer that lends `data` to one call (GSS-API does not write input buffers).
    pub fn borrowing(data: &[u8]) -> Buffer {
        Buffer {
            length: data.len(),
            value: data.as_ptr() as *mut c_void,
        }
    }
}

#[repr(C)]
pub struct Oid {
    pub length: u32,
    pub elements: *mut c_void,
}

pub const GSS_S_CONTINUE_NEEDED: Status = 1;
pub const GSS_C_ACCEPT: c_int = 2;
pub const GSS_C_INDEFINITE: u32 = 0xffff_ffff;
pub const GSS_C_GSS_CODE: c_int = 1;
pub const GSS_C_MECH_CODE: c_int = 2;

pub fn is_error(major: Status) -> bool {
    major & 0xffff_0000 != 0
}

/// GSS_KRB5_NT_PRINCIPAL_NAME, 1.2.840.113554.1.2.2.1.
pub const KRB5_NT_PRINCIPAL_NAME: [u8; 10] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x01];

type AcceptSecContext = unsafe extern "C" fn(
    *mut Status,
    *mut Context,
    Credential,
    *mut Buffer,
    *mut c_void,
    *mut Name,
    *mut *mut Oid,
    *mut Buffer,
    *mut u32,
    *mut u32,
    *mut Credential,
) -> Status;
type AcquireCred = unsafe extern "C" fn(
    *mut Status,
    Name,
    u32,
    *mut c_void,
    c_int,
    *mut Credential,
    *mut *mut c_void,
    *mut u32,
) -> Status;
type ImportName = unsafe extern "C" fn(*mut Status, *mut Buffer, *mut Oid, *mut Name) -> Status;
type DisplayName = unsafe extern "C" fn(*mut Status, Name, *mut Buffer, *mut *mut Oid) -> Status;
type Wrap = unsafe extern "C" fn(*mut Status, Context, c_int, u32, *mut Buffer, *mut c_int, *mut Buffer) -> Status;
type Unwrap = unsafe extern "C" fn(*mut Status, Context, *mut Buffer, *mut Buffer, *mut c_int, *mut u32) -> Status;
type ReleaseBuffer = unsafe extern "C" fn(*mut Status, *mut Buffer) -> Status;
type ReleaseName = unsafe extern "C" fn(*mut Status, *mut Name) -> Status;
type ReleaseCred = unsafe extern "C" fn(*mut Status, *mut Credential) -> Status;
type DeleteSecContext = unsafe extern "C" fn(*mut Status, *mut Context, *mut Buffer) -> Status;
type DisplayStatus = unsafe extern "C" fn(*mut Status, Status, c_int, *mut Oid, *mut u32, *mut Buffer) -> Status;
type RegisterAcceptorIdentity = unsafe extern "C" fn(*const c_char) -> Status;

pub struct Gss {
    _library: Library,
    pub accept_sec_context: AcceptSecContext,
    pub acquire_cred: AcquireCred,
    pub import_name: ImportName,
    pub display_name: DisplayName,
    pub wrap: Wrap,
    pub unwrap: Unwrap,
    pub release_buffer: ReleaseBuffer,
    pub release_name: ReleaseName,
    pub release_cred: ReleaseCred,
    pub delete_sec_context: DeleteSecContext,
    pub display_status: DisplayStatus,
    pub register_acceptor_identity: RegisterAcceptorIdentity,
}

const LIBRARY: &str = "libgssapi_krb5.so.2";

fn load() -> Result<Gss, String> {
    // SAFETY: loading MIT's GSS-API library runs only its own initialisers.
    let library = unsafe { Library::new(LIBRARY) }
        .map_err(|e| format!("GSSAPI needs MIT Kerberos' {LIBRARY} (Debian: libgssapi-krb5-2): {e}"))?;
    macro_rules! symbol {
        ($name:literal) => {
            // SAFETY: the type given is the C prototype of this GSS-API function.
            *unsafe { library.get(concat!($name, "\0").as_bytes()) }
                .map_err(|e| format!("{LIBRARY} lacks {}: {e}", $name))?
        };
    }
    Ok(Gss {
        accept_sec_context: symbol!("gss_accept_sec_context"),
        acquire_cred: symbol!("gss_acquire_cred"),
        import_name: symbol!("gss_import_name"),
        display_name: symbol!("gss_display_name"),
        wrap: symbol!("gss_wrap"),
        unwrap: symbol!("gss_unwrap"),
        release_buffer: symbol!("gss_release_buffer"),
        release_name: symbol!("gss_release_name"),
        release_cred: symbol!("gss_release_cred"),
        delete_sec_context: symbol!("gss_delete_sec_context"),
        display_status: symbol!("gss_display_status"),
        register_acceptor_identity: symbol!("krb5_gss_register_acceptor_identity"),
        _library: library,
    })
}

/// The library, loaded once for the process.
pub fn gss() -> Result<&'static Gss, String> {
    static GSS: OnceLock<Result<Gss, String>> = OnceLock::new();
    GSS.get_or_init(load).as_ref().map_err(Clone::clone)
}

impl Gss {
    /// Copies a buffer the library allocated, and releases it.
    pub fn take(&self, buffer: &mut Buffer) -> Vec<u8> {
        let data = if buffer.value.is_null() || buffer.length == 0 {
            Vec::new()
        } else {
            // SAFETY: the library returned `length` bytes at `value`.
            unsafe { std::slice::from_raw_parts(buffer.value as *const u8, buffer.length) }.to_vec()
        };
        let mut minor = 0;
        // SAFETY: the buffer came from the library and is released once.
        unsafe { (self.release_buffer)(&mut minor, buffer) };
        data
    }

    /// The library's words for a status (major, then the mechanism's minor).
    pub fn describe(&self, major: Status, minor: Status) -> String {
        let mut words = Vec::new();
        for (code, kind) in [(major, GSS_C_GSS_CODE), (minor, GSS_C_MECH_CODE)] {
            if code == 0 {
                continue;
            }
            let mut context = 0u32;
            loop {
                let mut m = 0;
                let mut text = Buffer::empty();
                // SAFETY: plain out-parameters; the text is released by take().
                let status =
                    unsafe { (self.display_status)(&mut m, code, kind, std::ptr::null_mut(), &mut context, &mut text) };
                if is_error(status) {
                    break;
                }
                words.push(String::from_utf8_lossy(&self.take(&mut text)).into_owned());
                if context == 0 {
                    break;
                }
            }
        }
        words.join(": ")
    }
}
