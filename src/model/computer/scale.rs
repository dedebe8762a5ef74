//! Between the screen and what a model sees: the size a provider's model is shown, and
//! its coordinates scaled back to screen pixels. Resizing the screenshots themselves is
//! the desktop's, outside the model layer.

/// Screen sizes models handle best (XGA, WXGA, FWXGA): a larger screen of the same aspect
/// ratio is shown to the model at this size.
pub const RECOMMENDED: [(u32, u32); 3] = [(1024, 768), (1280, 800), (1366, 768)];

/// Largest screenshot a model is shown: providers shrink larger images themselves, which
/// would silently shift every coordinate (Anthropic: 1568 px on the long edge, about
/// 1.15 megapixels).
pub const MAX_EDGE: u32 = 1568;
pub const MAX_PIXELS: u64 = 1_150_000;

/// Gemini's coordinates are on a 0-999 grid whatever the screenshot's size.
pub const NORMALISED_GRID: u32 = 1000;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScaleError {
    #[error("coordinate ({x}, {y}) is outside the screen of {width}x{height}")]
    Outside {
        x: i64,
        y: i64,
        width: u32,
        height: u32,
    },
    #[error("the screenshot is not a PNG that can be read: {0}")]
    Image(String),
}

/// The screen's size and the size the model is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scaling {
    pub screen: (u32, u32),
    pub model: (u32, u32),
}

impl Scaling {
    /// No scaling: the model sees the screen as it is.
    pub fn identity(screen: (u32, u32)) -> Scaling {
        Scaling {
            screen,
            model: screen,
        }
    }

    /// Scales a screen larger than one of `targets` with the same aspect ratio (within
    /// 0.02) down to it. Another screen is shown as it is when it is within
    /// [`MAX_EDGE`] and [`MAX_PIXELS`], and scaled down in proportion to fit them otherwise.
    pub fn fit(screen: (u32, u32), targets: &[(u32, u32)]) -> Scaling {
        let ratio = |(w, h): (u32, u32)| w as f64 / h as f64;
        let target = targets
            .iter()
            .filter(|t| (ratio(**t) - ratio(screen)).abs() < 0.02)
            .filter(|(w, h)| *w < screen.0 && *h < screen.1)
            .max_by_key(|(w, _)| *w);
        if let Some(&model) = target {
            return Scaling { screen, model };
        }
        let (w, h) = (screen.0 as f64, screen.1 as f64);
        let factor = (MAX_EDGE as f64 / w.max(h))
            .min((MAX_PIXELS as f64 / (w * h)).sqrt())
            .min(1.0);
        let model = (
            ((w * factor).floor() as u32).max(1),
            ((h * factor).floor() as u32).max(1),
        );
        Scaling { screen, model }
    }

    pub fn is_identity(&self) -> bool {
        self.screen == self.model
    }

    /// A point the model gave (in the size it was shown) on the screen.
    pub fn to_screen(&self, x: i64, y: i64) -> Result<(u32, u32), ScaleError> {
        let (mw, mh) = self.model;
        if x < 0 || y < 0 || x >= mw as i64 || y >= mh as i64 {
            return Err(ScaleError::Outside {
                x,
                y,
                width: mw,
                height: mh,
            });
        }
        Ok((
            scale(x as u32, mw, self.screen.0),
            scale(y as u32, mh, self.screen.1),
        ))
    }

    /// A point on the screen as the model sees it (the pointer's position).
    pub fn to_model(&self, x: u32, y: u32) -> (u32, u32) {
        (
            scale(x, self.screen.0, self.model.0),
            scale(y, self.screen.1, self.model.1),
        )
    }

    /// A point on Gemini's 0-999 grid on the screen.
    pub fn from_grid(&self, x: i64, y: i64) -> Result<(u32, u32), ScaleError> {
        let grid = NORMALISED_GRID as i64;
        if !(0..grid).contains(&x) || !(0..grid).contains(&y) {
            return Err(ScaleError::Outside {
                x,
                y,
                width: NORMALISED_GRID,
                height: NORMALISED_GRID,
            });
        }
        Ok((
            scale(x as u32, NORMALISED_GRID, self.screen.0),
            scale(y as u32, NORMALISED_GRID, self.screen.1),
        ))
    }
}

/// `value` out of `from` as a value out of `to`, rounded, kept inside `to`.
fn scale(value: u32, from: u32, to: u32) -> u32 {
    if from == to {
        return value;
    }
    let scaled = (value as f64 * to as f64 / from as f64).round() as u32;
    scaled.min(to.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_screen_of_a_recommended_size_is_not_scaled() {
        let s = Scaling::fit((1024, 768), &RECOMMENDED);
        assert!(s.is_identity());
        assert_eq!(s.to_screen(400, 118).unwrap(), (400, 118));
    }

    #[test]
    fn a_large_screen_is_shown_smaller_and_points_scale_back() {
        let s = Scaling::fit((1920, 1080), &RECOMMENDED);
        assert_eq!(s.model, (1366, 768));
        assert_eq!(s.to_screen(683, 384).unwrap(), (960, 540));
        assert_eq!(s.to_model(960, 540), (683, 384));
        let wxga = Scaling::fit((2560, 1600), &RECOMMENDED);
        assert_eq!(wxga.model, (1280, 800));
        assert_eq!(wxga.to_screen(1279, 799).unwrap(), (2558, 1598));
        assert!(matches!(
            wxga.to_screen(1280, 10),
            Err(ScaleError::Outside { .. })
        ));
        // No recommended size of this shape: shown as it is while small enough...
        assert!(Scaling::fit((1000, 1000), &RECOMMENDED).is_identity());
        // ...and in proportion within the providers' limits when not.
        let wide = Scaling::fit((2560, 1080), &RECOMMENDED);
        assert!(wide.model.0 <= MAX_EDGE);
        assert!(u64::from(wide.model.0) * u64::from(wide.model.1) <= MAX_PIXELS);
        assert!((wide.model.0 as f64 / wide.model.1 as f64 - 2560.0 / 1080.0).abs() < 0.01);
        assert_eq!(wide.to_screen(0, 0).unwrap(), (0, 0));
    }

    #[test]
    fn the_normalised_grid_maps_onto_the_screen() {
        let s = Scaling::identity((1024, 768));
        assert_eq!(s.from_grid(391, 154).unwrap(), (400, 118));
        assert_eq!(s.from_grid(999, 999).unwrap(), (1023, 767));
        assert!(s.from_grid(1000, 0).is_err());
    }
}
