//! Owned GSS-API handles: the acceptor's credential (from the keytab) and one
//! security context per authentication, each released when dropped.

use super::ffi::{self, Buffer, Gss, Oid};
use std::ffi::{c_void, CString};
use std::path::Path;
use std::ptr::null_mut;
use std::sync::Mutex;

/// The broker's Kerberos identity: its principal's key from the keytab.
pub struct Acceptor {
    gss: &'static Gss,
    credential: ffi::Credential,
    pub principal: String,
}

// SAFETY: MIT's credential handles may be used from any thread; the acceptor
// only reads its credential after acquiring it.
unsafe impl Send for Acceptor {}
unsafe impl Sync for Acceptor {}

/// MIT takes one acceptor keytab per process.
static KEYTAB: Mutex<Option<String>> = Mutex::new(None);

impl Acceptor {
    /// Reads `principal`'s key from `keytab`; fails when the keytab lacks it.
    pub fn new(keytab: &Path, principal: &str) -> Result<Acceptor, String> {
        let gss = ffi::gss()?;
        let path = keytab.to_string_lossy().into_owned();
        {
            let mut registered = KEYTAB.lock().map_err(|_| "keytab lock poisoned".to_string())?;
            match registered.as_deref() {
                Some(p) if p != path => {
                    return Err(format!("one keytab per broker: {p} is in use, {path} cannot be added"))
                }
                Some(_) => {}
                None => {
                    let c = CString::new(path.clone()).map_err(|_| "keytab path holds a NUL".to_string())?;
                    // SAFETY: a NUL-terminated path; MIT copies it.
                    let status = unsafe { (gss.register_acceptor_identity)(c.as_ptr()) };
                    if ffi::is_error(status) {
                        return Err(format!("cannot use keytab {path}: {}", gss.describe(status, 0)));
                    }
                    *registered = Some(path.clone());
                }
            }
        }
        let mut oid_bytes = ffi::KRB5_NT_PRINCIPAL_NAME;
        let mut oid = Oid {
            length: oid_bytes.len() as u32,
            elements: oid_bytes.as_mut_ptr() as *mut c_void,
        };
        let mut name_buffer = Buffer::borrowing(principal.as_bytes());
        let mut name: ffi::Name = null_mut();
        let mut minor = 0;
        // SAFETY: input buffers outlive the call; `name` is released below.
        let major = unsafe { (gss.import_name)(&mut minor, &mut name_buffer, &mut oid, &mut name) };
        if ffi::is_error(major) {
            return Err(format!("bad principal {principal}: {}", gss.describe(major, minor)));
        }
        let mut credential: ffi::Credential = null_mut();
        // SAFETY: `name` is valid; the credential is released on drop.
        let major = unsafe {
            (gss.acquire_cred)(
                &mut minor,
                name,
                ffi::GSS_C_INDEFINITE,
                null_mut(),
                ffi::GSS_C_ACCEPT,
                &mut credential,
                null_mut(),
                null_mut(),
            )
        };
        let mut release_minor = 0;
        // SAFETY: `name` came from import_name and is released once.
        unsafe { (gss.release_name)(&mut release_minor, &mut name) };
        if ffi::is_error(major) {
            return Err(format!(
                "no key for {principal} in keytab {path}: {}",
                gss.describe(major, minor)
            ));
        }
        Ok(Acceptor {
            gss,
            credential,
            principal: principal.to_string(),
        })
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        let mut minor = 0;
        // SAFETY: acquired in new() and released once.
        unsafe { (self.gss.release_cred)(&mut minor, &mut self.credential) };
    }
}

pub struct SecurityContext {
    gss: Option<&'static Gss>,
    handle: ffi::Context,
}

// SAFETY: a context is used by one connection at a time (moved, never shared).
unsafe impl Send for SecurityContext {}

pub struct Accepted {
    pub token: Vec<u8>,
    /// The client's principal once the context is established.
    pub peer: Option<String>,
}

impl SecurityContext {
    pub fn new() -> SecurityContext {
        SecurityContext {
            gss: ffi::gss().ok(),
            handle: null_mut(),
        }
    }

    fn gss(&self) -> Result<&'static Gss, String> {
        self.gss.ok_or_else(|| "GSSAPI library not loaded".to_string())
    }

    pub fn accept(&mut self, acceptor: &Acceptor, token: &[u8]) -> Result<Accepted, String> {
        let gss = self.gss()?;
        let mut input = Buffer::borrowing(token);
        let mut output = Buffer::empty();
        let mut source: ffi::Name = null_mut();
        let mut minor = 0;
        // SAFETY: handles are ours; outputs are released below.
        let major = unsafe {
            (gss.accept_sec_context)(
                &mut minor,
                &mut self.handle,
                acceptor.credential,
                &mut input,
                null_mut(),
                &mut source,
                null_mut(),
                &mut output,
                null_mut(),
                null_mut(),
                null_mut(),
            )
        };
        let token = gss.take(&mut output);
        if ffi::is_error(major) {
            if !source.is_null() {
                // SAFETY: released once.
                unsafe { (gss.release_name)(&mut 0, &mut source) };
            }
            return Err(gss.describe(major, minor));
        }
        let peer = if major & ffi::GSS_S_CONTINUE_NEEDED == 0 {
            let mut text = Buffer::empty();
            // SAFETY: `source` was set by an established context.
            let status = unsafe { (gss.display_name)(&mut minor, source, &mut text, null_mut()) };
            let name = (!ffi::is_error(status)).then(|| String::from_utf8_lossy(&gss.take(&mut text)).into_owned());
            name.ok_or_else(|| "the client's principal has no name".to_string())
                .map(Some)?
        } else {
            None
        };
        if !source.is_null() {
            // SAFETY: released once.
            unsafe { (gss.release_name)(&mut 0, &mut source) };
        }
        Ok(Accepted { token, peer })
    }

    pub fn wrap(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let gss = self.gss()?;
        let mut input = Buffer::borrowing(data);
        let mut output = Buffer::empty();
        let mut minor = 0;
        // SAFETY: an established context; the output is released by take().
        let major = unsafe { (gss.wrap)(&mut minor, self.handle, 0, 0, &mut input, null_mut(), &mut output) };
        let wrapped = gss.take(&mut output);
        if ffi::is_error(major) {
            return Err(gss.describe(major, minor));
        }
        Ok(wrapped)
    }

    pub fn unwrap(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let gss = self.gss()?;
        let mut input = Buffer::borrowing(data);
        let mut output = Buffer::empty();
        let mut minor = 0;
        // SAFETY: as wrap().
        let major = unsafe { (gss.unwrap)(&mut minor, self.handle, &mut input, &mut output, null_mut(), null_mut()) };
        let plain = gss.take(&mut output);
        if ffi::is_error(major) {
            return Err(gss.describe(major, minor));
        }
        Ok(plain)
    }
}

impl Drop for SecurityContext {
    fn drop(&mut self) {
        if let (Some(gss), false) = (self.gss, self.handle.is_null()) {
            let mut minor = 0;
            // SAFETY: the context is ours and deleted once.
            unsafe { (gss.delete_sec_context)(&mut minor, &mut self.handle, null_mut()) };
        }
    }
}
