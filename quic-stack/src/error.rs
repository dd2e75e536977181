//! Protocol errors: data that becomes a CONNECTION_CLOSE frame (RFC 9000 §20)

use std::fmt;

/// A transport error code (RFC 9000 §20.1, plus CRYPTO_ERROR range 0x0100-0x01ff)
#[derive(Copy, Clone, Eq, PartialEq, Hash)]
pub struct TransportErrorCode(pub u64);

macro_rules! codes {
    ($($name:ident = $value:expr,)*) => {
        impl TransportErrorCode {
            $(
                #[allow(missing_docs)]
                pub const $name: Self = Self($value);
            )*
        }
        impl fmt::Debug for TransportErrorCode {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    $($value => f.write_str(stringify!($name)),)*
                    x @ 0x100..=0x1ff => write!(f, "CRYPTO_ERROR({:#04x})", x & 0xff),
                    x => write!(f, "{x:#x}"),
                }
            }
        }
    };
}

codes! {
    NO_ERROR = 0x0,
    INTERNAL_ERROR = 0x1,
    CONNECTION_REFUSED = 0x2,
    FLOW_CONTROL_ERROR = 0x3,
    STREAM_LIMIT_ERROR = 0x4,
    STREAM_STATE_ERROR = 0x5,
    FINAL_SIZE_ERROR = 0x6,
    FRAME_ENCODING_ERROR = 0x7,
    TRANSPORT_PARAMETER_ERROR = 0x8,
    CONNECTION_ID_LIMIT_ERROR = 0x9,
    PROTOCOL_VIOLATION = 0xa,
    INVALID_TOKEN = 0xb,
    APPLICATION_ERROR = 0xc,
    CRYPTO_BUFFER_EXCEEDED = 0xd,
    KEY_UPDATE_ERROR = 0xe,
    AEAD_LIMIT_REACHED = 0xf,
    NO_VIABLE_PATH = 0x10,
    VERSION_NEGOTIATION_ERROR = 0x11,
}

impl TransportErrorCode {
    /// CRYPTO_ERROR carrying a TLS alert
    pub const fn crypto(alert: u8) -> Self {
        Self(0x100 | alert as u64)
    }
}

impl fmt::Display for TransportErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A protocol violation detected locally; closes the connection
#[derive(Debug, Clone, Eq, PartialEq)]
pub struct TransportError {
    /// The code sent to the peer
    pub code: TransportErrorCode,
    /// The frame type that triggered it, when known
    pub frame_type: Option<u64>,
    /// Human-readable reason, sent to the peer
    pub reason: String,
}

impl TransportError {
    /// An error with a code and reason
    pub fn new(code: TransportErrorCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            frame_type: None,
            reason: reason.into(),
        }
    }
    /// The same error, blamed on a frame type
    pub fn with_frame(mut self, frame_type: u64) -> Self {
        self.frame_type = Some(frame_type);
        self
    }
}

macro_rules! ctors {
    ($($fn_name:ident => $code:ident,)*) => {
        impl TransportError {
            $(
                #[allow(missing_docs, non_snake_case)]
                pub fn $fn_name(reason: impl Into<String>) -> Self {
                    Self::new(TransportErrorCode::$code, reason)
                }
            )*
        }
    };
}

ctors! {
    INTERNAL_ERROR => INTERNAL_ERROR,
    FLOW_CONTROL_ERROR => FLOW_CONTROL_ERROR,
    STREAM_LIMIT_ERROR => STREAM_LIMIT_ERROR,
    STREAM_STATE_ERROR => STREAM_STATE_ERROR,
    FINAL_SIZE_ERROR => FINAL_SIZE_ERROR,
    FRAME_ENCODING_ERROR => FRAME_ENCODING_ERROR,
    TRANSPORT_PARAMETER_ERROR => TRANSPORT_PARAMETER_ERROR,
    CONNECTION_ID_LIMIT_ERROR => CONNECTION_ID_LIMIT_ERROR,
    PROTOCOL_VIOLATION => PROTOCOL_VIOLATION,
    INVALID_TOKEN => INVALID_TOKEN,
    CRYPTO_BUFFER_EXCEEDED => CRYPTO_BUFFER_EXCEEDED,
    KEY_UPDATE_ERROR => KEY_UPDATE_ERROR,
    AEAD_LIMIT_REACHED => AEAD_LIMIT_REACHED,
    VERSION_NEGOTIATION_ERROR => VERSION_NEGOTIATION_ERROR,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(ty) = self.frame_type {
            write!(f, " in frame {ty:#x}")?;
        }
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for TransportError {}
