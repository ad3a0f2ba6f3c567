//! QR codes drawn with half-block characters: two modules per character cell vertically, so a
//! code for a typical authorization URL fits beside the dialog text on a 120×40 terminal.

use qrcode::{EcLevel, QrCode};

/// Quiet zone in modules. The standard asks for 4; phone scanners read 2 reliably and every
/// row saved matters on an 80×24 terminal.
const QUIET: usize = 2;

/// A QR code as lines of text: `█` marks light modules, so it scans on the usual dark
/// background; the renderer also paints it white-on-black when colour is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QrArt {
    /// One string per character row, each `width` cells wide.
    pub lines: Vec<String>,
    /// Width in cells.
    pub width: u16,
}

impl QrArt {
    /// Encodes `data` (low error correction: the smallest code); `None` if it is too long.
    pub fn encode(data: &str) -> Option<Self> {
        let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::L).ok()?;
        let n = code.width();
        let colors = code.to_colors();
        let size = n + 2 * QUIET;
        // Light when outside the code (quiet zone) or a light module.
        let light = |x: usize, y: usize| -> bool {
            if x < QUIET || y < QUIET || x >= n + QUIET || y >= n + QUIET {
                return true;
            }
            colors
                .get((y - QUIET) * n + (x - QUIET))
                .is_none_or(|c| *c == qrcode::Color::Light)
        };
        let lines = (0..size)
            .step_by(2)
            .map(|y| {
                (0..size)
                    .map(|x| {
                        let top = light(x, y);
                        let bottom = y + 1 >= size || light(x, y + 1);
                        match (top, bottom) {
                            (true, true) => '█',
                            (true, false) => '▀',
                            (false, true) => '▄',
                            (false, false) => ' ',
                        }
                    })
                    .collect()
            })
            .collect();
        Some(Self {
            lines,
            width: u16::try_from(size).ok()?,
        })
    }

    /// Height in cells.
    pub fn height(&self) -> u16 {
        u16::try_from(self.lines.len()).unwrap_or(u16::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_encodes_in_half_blocks() {
        let art = QrArt::encode("http://127.0.0.1:8080/authorize?client_id=demo").expect("fits");
        // Version 3 is 29 modules; plus the quiet zone on both sides.
        assert_eq!(usize::from(art.width), 29 + 2 * QUIET);
        assert_eq!(art.lines.len(), (29 + 2 * QUIET).div_ceil(2));
        assert!(
            art.lines
                .iter()
                .all(|l| l.chars().count() == usize::from(art.width))
        );
        // The first row is all quiet zone.
        assert!(art.lines[0].chars().all(|c| c == '█'));
        // Finder patterns put dark modules in the second line.
        assert!(art.lines[1].contains(' ') || art.lines[1].contains('▀'));
    }

    #[test]
    fn too_long_is_none() {
        assert!(QrArt::encode(&"x".repeat(10_000)).is_none());
    }
}
