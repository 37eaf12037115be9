//! TensorBoard event files: scalars in the `events.out.tfevents.*` format TensorBoard
//! (and `tensorboard --logdir`, `tbparse`, TensorFlow's summary iterator) reads.
//!
//! A file is a sequence of TFRecords (a little-endian `u64` length, its masked CRC-32C,
//! the bytes, their masked CRC-32C), each holding one `Event` protocol buffer; the first
//! declares the format version `brain.Event:2`. The messages carry only the fields
//! scalars need, with the field numbers of TensorFlow's `event.proto` and
//! `summary.proto`.

use prost::Message;

/// `tensorflow.Event`.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The global step the values belong to.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// Only in the first record: the format version.
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    /// The values logged at this step.
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    /// One value per tag.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` holding a scalar.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    /// The series name TensorBoard plots the value under.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// The scalar.
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

/// The scalars logged at one step: the step and `(tag, value)` pairs.
pub type StepScalars = (i64, Vec<(String, f32)>);

/// The CRC TFRecord stores: CRC-32C rotated right by 15 bits plus a constant, so that a
/// CRC of data that itself contains CRCs stays well distributed.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Appends one TFRecord holding `event` to `out`.
fn push_record(out: &mut Vec<u8>, event: &Event) {
    let data = event.encode_to_vec();
    let length = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc(&length).to_le_bytes());
    out.extend_from_slice(&data);
    out.extend_from_slice(&masked_crc(&data).to_le_bytes());
}

/// The bytes of an event file: the version record, then one record per step with its
/// scalars, all stamped with `wall_time`.
pub fn event_file(wall_time: f64, steps: &[StepScalars]) -> Vec<u8> {
    let mut out = Vec::new();
    push_record(
        &mut out,
        &Event {
            wall_time,
            step: 0,
            file_version: Some("brain.Event:2".into()),
            summary: None,
        },
    );
    for (step, values) in steps {
        let value = values
            .iter()
            .map(|(tag, v)| SummaryValue {
                tag: tag.clone(),
                simple_value: Some(*v),
            })
            .collect();
        push_record(
            &mut out,
            &Event {
                wall_time,
                step: *step,
                file_version: None,
                summary: Some(Summary { value }),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte for byte what TensorBoard's own writer (tensorboard 2.21,
    /// `RecordWriter` over `Event(...).SerializeToString()`) produces for the same
    /// two events.
    #[test]
    fn event_file_matches_tensorboards_writer() {
        let reference = "1800000000000000a37f4b2209000000000000f83f1a0d627261696e2e4576656e743a32\
                         2a28646c200000000000000029eda95009000000000000f83f10072a130a110a0a74726169\
                         6e2f6c6f7373150000803ef4985d1a";
        let ours: String = event_file(1.5, &[(7, vec![("train/loss".into(), 0.25)])])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(ours, reference);
    }

    /// Records frame their payload with its length and both CRCs, and decode back.
    #[test]
    fn records_frame_and_decode() {
        let bytes = event_file(1.5, &[(7, vec![("train/loss".into(), 0.25)])]);
        let mut rest = &bytes[..];
        let mut events = Vec::new();
        while !rest.is_empty() {
            let length = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            let length_crc = u32::from_le_bytes(rest[8..12].try_into().unwrap());
            assert_eq!(length_crc, masked_crc(&rest[..8]));
            let data = &rest[12..12 + length];
            let data_crc = u32::from_le_bytes(rest[12 + length..16 + length].try_into().unwrap());
            assert_eq!(data_crc, masked_crc(data));
            events.push(Event::decode(data).unwrap());
            rest = &rest[16 + length..];
        }
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
        assert_eq!(events[1].step, 7);
        let value = &events[1].summary.as_ref().unwrap().value[0];
        assert_eq!(
            (value.tag.as_str(), value.simple_value),
            ("train/loss", Some(0.25))
        );
    }
}
