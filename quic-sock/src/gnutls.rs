//! GnuTLS, loaded at run time
//!
//! PSK handshakes and libquic's `quic_handshake(gnutls_session_t)` run TLS in the
//! application's process with GnuTLS's QUIC hooks, as libquic does. The library is opened with
//! `dlopen("libgnutls.so.30")` on first use instead of being linked, so the workspace builds
//! without GnuTLS headers and programs that never do a PSK handshake don't need GnuTLS at all.
//! An application that links GnuTLS itself gets the same, already loaded, copy from dlopen, so
//! the sessions it hands to `quic_handshake` are this module's sessions.
//!
//! Only the functions and constants used here are declared; the values are the documented ones
//! of the public `<gnutls/gnutls.h>` (stable across the `libgnutls.so.30` ABI).

use std::ffi::CStr;
use std::sync::OnceLock;

use libc::{c_char, c_int, c_uint, c_void, size_t, ssize_t};

/// `gnutls_session_t`
pub(crate) type Session = *mut c_void;

/// `gnutls_datum_t`
#[repr(C)]
pub(crate) struct Datum {
    pub(crate) data: *mut u8,
    pub(crate) size: c_uint,
}

// gnutls_init flags
pub(crate) const GNUTLS_SERVER: c_uint = 1;
pub(crate) const GNUTLS_CLIENT: c_uint = 1 << 1;
pub(crate) const GNUTLS_NO_TICKETS: c_uint = 1 << 10;
/// libquic's sessions have it: a client offers early data when it resumes with a ticket that
/// allows it, a server accepts it (with anti-replay on) and issues tickets that allow it
pub(crate) const GNUTLS_ENABLE_EARLY_DATA: c_uint = 1 << 20;
pub(crate) const GNUTLS_NO_END_OF_EARLY_DATA: c_uint = 1 << 22;

// gnutls_credentials_type_t
pub(crate) const GNUTLS_CRD_PSK: c_int = 4;
// gnutls_psk_key_flags
pub(crate) const GNUTLS_PSK_KEY_RAW: c_int = 0;
// gnutls_server_name_type_t
pub(crate) const GNUTLS_NAME_DNS: c_int = 1;
// gnutls_alpn_flags_t
pub(crate) const GNUTLS_ALPN_MANDATORY: c_uint = 1;

// gnutls_cipher_algorithm_t
pub(crate) const GNUTLS_CIPHER_AES_128_GCM: c_int = 10;
pub(crate) const GNUTLS_CIPHER_AES_256_GCM: c_int = 11;
pub(crate) const GNUTLS_CIPHER_AES_128_CCM: c_int = 19;
pub(crate) const GNUTLS_CIPHER_CHACHA20_POLY1305: c_int = 23;

// gnutls_record_encryption_level_t
pub(crate) const LEVEL_INITIAL: c_int = 0;
pub(crate) const LEVEL_EARLY: c_int = 1;
pub(crate) const LEVEL_HANDSHAKE: c_int = 2;
pub(crate) const LEVEL_APPLICATION: c_int = 3;

// gnutls_handshake_description_t
pub(crate) const GNUTLS_HANDSHAKE_KEY_UPDATE: c_int = 24;

// gnutls_ext_parse_type_t / gnutls_ext_flags_t
pub(crate) const GNUTLS_EXT_TLS: c_int = 2;
pub(crate) const GNUTLS_EXT_FLAG_CLIENT_HELLO: c_uint = 1 << 1;
pub(crate) const GNUTLS_EXT_FLAG_EE: c_uint = 1 << 4;
pub(crate) const GNUTLS_EXT_FLAG_TLS: c_uint = 1 << 7;

// error codes
pub(crate) const GNUTLS_E_INTERNAL_ERROR: c_int = -59;

/// libquic's `QUIC_PRIORITY`: TLS 1.3 only, (EC)DHE-PSK or certificates, the four QUIC AEADs,
/// no middlebox compatibility mode (RFC 9001 §8.4)
pub(crate) const QUIC_PRIORITY: &CStr =
    c"NORMAL:-VERS-ALL:+VERS-TLS1.3:+PSK:+ECDHE-PSK:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM:-GROUP-ALL:+GROUP-SECP256R1:+GROUP-X25519:+GROUP-SECP384R1:+GROUP-SECP521R1:%DISABLE_TLS13_COMPAT_MODE";

/// `gnutls_handshake_secret_func`
pub(crate) type SecretFn =
    unsafe extern "C" fn(Session, c_int, *const c_void, *const c_void, size_t) -> c_int;
/// `gnutls_handshake_read_func`
pub(crate) type ReadFn =
    unsafe extern "C" fn(Session, c_int, c_int, *const c_void, size_t) -> c_int;
/// `gnutls_alert_read_func`
pub(crate) type AlertFn = unsafe extern "C" fn(Session, c_int, c_int, c_int) -> c_int;
/// `gnutls_ext_recv_func`
pub(crate) type ExtRecvFn = unsafe extern "C" fn(Session, *const u8, size_t) -> c_int;
/// `gnutls_ext_send_func`
pub(crate) type ExtSendFn = unsafe extern "C" fn(Session, *mut c_void) -> c_int;
/// `gnutls_keylog_func`
pub(crate) type KeylogFn = unsafe extern "C" fn(Session, *const c_char, *const Datum) -> c_int;
/// `gnutls_pull_func`
pub(crate) type PullFn = unsafe extern "C" fn(*mut c_void, *mut c_void, size_t) -> ssize_t;
/// `gnutls_psk_server_credentials_function`
pub(crate) type PskServerFn = unsafe extern "C" fn(Session, *const c_char, *mut Datum) -> c_int;

/// Why GnuTLS could not be used
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LoadError {
    /// dlopen failed (GnuTLS not installed)
    #[error("cannot load libgnutls.so.30: {0}")]
    NotFound(String),
    /// The library lacks a function we need (a GnuTLS older than 3.7.2)
    #[error("libgnutls.so.30 has no {0} (GnuTLS >= 3.7.2 needed)")]
    Missing(&'static str),
}

macro_rules! gnutls_api {
    ($(fn $name:ident($($arg:ident : $t:ty),*) $(-> $ret:ty)?;)*) => {
        /// The GnuTLS functions this library calls, resolved from the loaded library
        #[allow(non_snake_case)]
        pub(crate) struct Gnutls {
            $(pub(crate) $name: unsafe extern "C" fn($($t),*) $(-> $ret)?,)*
        }

        impl Gnutls {
            /// # Safety
            /// `handle` is a live dlopen handle of libgnutls.so.30.
            unsafe fn resolve(handle: *mut c_void) -> Result<Self, LoadError> {
                Ok(Self {
                    $($name: {
                        // SAFETY: NUL-terminated literal; handle valid per contract.
                        let p = unsafe {
                            libc::dlsym(handle, concat!(stringify!($name), "\0").as_ptr().cast())
                        };
                        if p.is_null() {
                            return Err(LoadError::Missing(stringify!($name)));
                        }
                        // SAFETY: the symbol is GnuTLS's function of this name, whose C
                        // prototype in <gnutls/gnutls.h> is the one declared here.
                        unsafe {
                            std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($t),*) $(-> $ret)?>(p)
                        }
                    },)*
                })
            }
        }
    };
}

gnutls_api! {
    fn gnutls_init(s: *mut Session, flags: c_uint) -> c_int;
    fn gnutls_deinit(s: Session);
    fn gnutls_priority_set_direct(s: Session, prio: *const c_char, err: *mut *const c_char) -> c_int;
    fn gnutls_credentials_set(s: Session, ty: c_int, cred: *mut c_void) -> c_int;
    fn gnutls_psk_allocate_client_credentials(c: *mut *mut c_void) -> c_int;
    fn gnutls_psk_free_client_credentials(c: *mut c_void);
    fn gnutls_psk_set_client_credentials(c: *mut c_void, user: *const c_char, key: *const Datum, flags: c_int) -> c_int;
    fn gnutls_psk_allocate_server_credentials(c: *mut *mut c_void) -> c_int;
    fn gnutls_psk_free_server_credentials(c: *mut c_void);
    fn gnutls_psk_set_server_credentials_function(c: *mut c_void, f: PskServerFn);
    fn gnutls_hex_decode2(hex: *const Datum, out: *mut Datum) -> c_int;
    fn gnutls_server_name_set(s: Session, ty: c_int, name: *const c_void, len: size_t) -> c_int;
    fn gnutls_alpn_set_protocols(s: Session, p: *const Datum, n: c_uint, flags: c_uint) -> c_int;
    fn gnutls_alpn_get_selected_protocol(s: Session, p: *mut Datum) -> c_int;
    fn gnutls_session_set_ptr(s: Session, p: *mut c_void);
    fn gnutls_session_get_ptr(s: Session) -> *mut c_void;
    fn gnutls_session_set_data(s: Session, d: *const c_void, n: size_t) -> c_int;
    fn gnutls_session_get_data(s: Session, d: *mut c_void, n: *mut size_t) -> c_int;
    fn gnutls_transport_set_int2(s: Session, r: c_int, w: c_int);
    fn gnutls_transport_get_int(s: Session) -> c_int;
    fn gnutls_transport_set_pull_function(s: Session, f: PullFn);
    fn gnutls_handshake(s: Session) -> c_int;
    fn gnutls_handshake_write(s: Session, level: c_int, data: *const c_void, n: size_t) -> c_int;
    fn gnutls_handshake_set_secret_function(s: Session, f: SecretFn);
    fn gnutls_handshake_set_read_function(s: Session, f: ReadFn);
    fn gnutls_alert_set_read_function(s: Session, f: AlertFn);
    fn gnutls_alert_send_appropriate(s: Session, err: c_int) -> c_int;
    fn gnutls_session_ext_register(s: Session, name: *const c_char, id: c_int, parse: c_int, recv: ExtRecvFn, send: ExtSendFn, deinit: *const c_void, pack: *const c_void, unpack: *const c_void, flags: c_uint) -> c_int;
    fn gnutls_ext_set_data(s: Session, id: c_uint, p: *mut c_void);
    fn gnutls_ext_get_data(s: Session, id: c_uint, p: *mut *mut c_void) -> c_int;
    fn gnutls_buffer_append_data(b: *mut c_void, d: *const c_void, n: size_t) -> c_int;
    fn gnutls_cipher_get(s: Session) -> c_int;
    fn gnutls_early_cipher_get(s: Session) -> c_int;
    fn gnutls_session_get_keylog_function(s: Session) -> Option<KeylogFn>;
    fn gnutls_session_set_keylog_function(s: Session, f: Option<KeylogFn>);
    fn gnutls_session_ticket_send(s: Session, nr: c_uint, flags: c_uint) -> c_int;
    fn gnutls_error_is_fatal(e: c_int) -> c_int;
    fn gnutls_strerror(e: c_int) -> *const c_char;
}

impl Gnutls {
    /// GnuTLS's message for an error code
    pub(crate) fn strerror(&self, e: c_int) -> String {
        // SAFETY: gnutls_strerror returns a static NUL-terminated string for any code.
        let p = unsafe { (self.gnutls_strerror)(e) };
        if p.is_null() {
            return format!("GnuTLS error {e}");
        }
        // SAFETY: static string per the above.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// The loaded library (loaded once; never unloaded, sessions may outlive any caller)
pub(crate) fn get() -> Result<&'static Gnutls, LoadError> {
    static LIB: OnceLock<Result<Gnutls, LoadError>> = OnceLock::new();
    LIB.get_or_init(|| open(c"libgnutls.so.30"))
        .as_ref()
        .map_err(Clone::clone)
}

fn open(name: &CStr) -> Result<Gnutls, LoadError> {
    // SAFETY: dlopen with a NUL-terminated name; RTLD_NOW so a missing symbol fails here.
    let h = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW) };
    if h.is_null() {
        // SAFETY: dlerror returns a thread-local NUL-terminated string or null.
        let why = unsafe { libc::dlerror() };
        let why = if why.is_null() {
            "not found".to_string()
        } else {
            // SAFETY: non-null dlerror string.
            unsafe { CStr::from_ptr(why) }
                .to_string_lossy()
                .into_owned()
        };
        return Err(LoadError::NotFound(why));
    }
    // SAFETY: h is a live handle of the named library.
    let r = unsafe { Gnutls::resolve(h) };
    if r.is_err() {
        // SAFETY: nothing of this handle is kept when resolution failed.
        unsafe { libc::dlclose(h) };
    }
    r
}

/// One line on stderr when `QUIC_LOG` is set (libquic logs only when asked to, too)
pub(crate) fn log(args: std::fmt::Arguments<'_>) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("QUIC_LOG").is_some()) {
        eprintln!("quic-sock: {args}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_an_error_not_a_crash() {
        assert!(matches!(
            open(c"libgnutls-not-installed.so.30"),
            Err(LoadError::NotFound(_))
        ));
        // A library without GnuTLS's symbols: the first missing function is named.
        assert_eq!(
            open(c"libc.so.6").err(),
            Some(LoadError::Missing("gnutls_init"))
        );
    }

    #[test]
    fn the_installed_gnutls_has_every_function_used() {
        match get() {
            Ok(_) => {}
            Err(LoadError::NotFound(why)) => eprintln!("SKIP: {why}"),
            Err(e) => panic!("{e}"),
        }
    }
}
