"""Korean summaries of every catalog entry, for `trainlab catalog --lang ko`.

One table beside the registries (kind -> name -> summary), so that a
registry entry keeps one English docstring; a test checks that every entry
of every registry has its Korean line here.
"""

from __future__ import annotations

__all__ = ["KIND_NAMES", "SUMMARIES", "summary"]

KIND_NAMES = {
    "optimizer": "옵티마이저", "schedule": "학습률 스케줄", "initializer": "초기화", "activation": "활성화 함수",
    "regularizer": "규제", "loss": "손실 함수", "metric": "평가 지표", "layer": "층", "augmentation": "데이터 증강",
    "dataset": "데이터셋", "scaler": "입력 스케일링",
}

SUMMARIES: dict[str, dict[str, str]] = {
    "optimizer": {
        "adadelta": "Adadelta: 기울기 제곱과 업데이트 제곱의 이동 평균 비율로 스텝 크기를 정한다. 논문 형태에서는 "
                    "학습률이 없고, torch는 그 결과에 lr(기본 1.0)을 곱한다.",
        "adagrad": "Adagrad: 기울기 제곱을 계속 누적해 파라미터마다 스텝을 나눈다. 드문 특성에는 크게, 자주 나오는 "
                   "특성에는 작게 움직이지만 누적합이 커지면 학습이 느려진다.",
        "adam": "Adam: 기울기의 1차·2차 모멘트 추정치를 편향 보정해 쓰는 적응형 옵티마이저.",
        "adamw": "AdamW: 가중치 감쇠를 기울기와 분리해 적용하는 Adam.",
        "momentum": "모멘텀(heavy-ball) SGD: 속도 v <- momentum * v + g를 누적해 p <- p - lr * v로 움직인다.",
        "nadam": "NAdam: 네스테로프 모멘텀을 결합한 Adam(Dozat 2016), torch의 모멘텀 스케줄을 따른다.",
        "nesterov": "네스테로프 모멘텀 SGD: 앞으로 갈 위치에서 본 기울기로 속도를 고친다(torch의 정의).",
        "rmsprop": "RMSprop: 기울기 제곱의 지수 이동 평균으로 스텝을 나눈다. Adagrad와 달리 오래된 기울기는 잊는다.",
        "sgd": "순수 (확률적) 경사 하강법: p <- p - lr * g.",
    },
    "schedule": {
        "constant": "학습 내내 배율 1: 옵티마이저의 학습률을 그대로 쓴다.",
        "cosine": "Keras CosineDecay와 같은 코사인 감쇠: 학습 전체에 걸쳐 1에서 alpha로 반 코사인 곡선을 따라 줄인다.",
        "cosine_restarts": "SGDR: period 에폭 동안 1에서 alpha로 코사인 감쇠한 뒤 다시 1로 재시작한다.",
        "cyclic": "순환 학습률(Smith 2017): torch CyclicLR의 공식대로 학습률을 주기적으로 오르내린다.",
        "exponential": "지수 감쇠: 에폭마다 gamma ** epoch 배.",
        "linear": "선형 감쇠: 학습 전체에 걸쳐 1에서 end_factor로 줄인다(torch LinearLR).",
        "multistep": "다단계 감쇠: 지나간 마일스톤 수만큼 gamma를 곱한다(torch MultiStepLR).",
        "one_cycle": "1cycle 정책(torch OneCycleLR): 학습률을 최고점까지 올렸다가 내린다. 옵티마이저의 lr이 최고점이다.",
        "plateau": "정체 시 감소: 지표가 나아지지 않으면 학습률을 줄인다(Keras 3 ReduceLROnPlateau와 에폭 단위로 같다).",
        "step": "계단식 감쇠: gamma ** floor(epoch / step_size).",
        "warmup_cosine": "선형 워밍업 뒤 남은 학습 동안 alpha까지 코사인 감쇠.",
    },
    "initializer": {
        "constant": "모든 값을 value(기본 0.0)로 채운다(Keras Constant).",
        "glorot_normal": "Keras GlorotNormal: 분산 2 / (fan_in + fan_out)의 절단 정규분포.",
        "glorot_uniform": "Keras의 기본 커널 초기화: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)).",
        "he_normal": "Keras HeNormal: 분산 2 / fan_in의 절단 정규분포(He 외 2015). ReLU 층용.",
        "he_uniform": "Keras HeUniform: U(-limit, limit), limit = sqrt(6 / fan_in), 즉 분산 2 / fan_in.",
        "lecun_normal": "Keras LecunNormal: 분산 1 / fan_in의 절단 정규분포. selu와 짝을 이룬다.",
        "lecun_uniform": "Keras LecunUniform: U(-limit, limit), limit = sqrt(3 / fan_in), 즉 분산 1 / fan_in.",
        "normal": "N(mean, std^2)에서 뽑는다. std는 층 크기에 맞춰 조정되지 않는다.",
        "ones": "1로 채운다. 정규화 층의 스케일을 시작할 때 흔히 쓴다.",
        "orthogonal": "(준)직교 행렬에 gain을 곱해 채운다(Saxe 외 2014).",
        "uniform": "U(low, high)에서 뽑는다. 기본값은 Keras RandomUniform과 같은 (-0.05, 0.05).",
        "xavier": "N(0, 1/fan_in)에서 뽑는다. 강의 노트의 'Xavier' 초기화.",
        "zeros": "0으로 채운다. 편향의 일반적인 초기화(가중치에는 쓰지 않는다: 유닛들이 똑같이 남는다).",
    },
    "activation": {
        "elu": "지수 선형 유닛: x > 0이면 x, 아니면 alpha * (exp(x) - 1).",
        "gelu": "가우시안 오차 선형 유닛 x * Phi(x).",
        "leaky_relu": "Leaky ReLU: x >= 0이면 x, 아니면 alpha * x.",
        "linear": "항등 함수 f(x) = x(활성화 없음). 회귀의 출력층에 흔히 쓴다.",
        "log_softmax": "axis를 따라 softmax의 로그를 x - logsumexp(x)로 오버플로 없이 계산한다.",
        "prelu": "파라메트릭 ReLU: x >= 0이면 x, 아니면 a * x이며 기울기 a를 학습한다.",
        "relu": "정류 선형 유닛 max(0, x). 은닉층의 기본 활성화 함수.",
        "selu": "Klambauer 외 2017의 상수를 쓴 스케일드 ELU. lecun_normal 가중치와 함께 쓴다.",
        "sigmoid": "로지스틱 시그모이드 1 / (1 + exp(-x)), 출력은 (0, 1). 이진 확률에 쓴다.",
        "silu": "시그모이드 선형 유닛 x * sigmoid(x)(Hendrycks와 Gimpel 2016). swish와 같은 함수.",
        "softmax": "axis를 따라 exp(x_i) / sum_j exp(x_j). 클래스 확률에 쓴다.",
        "softplus": "Softplus log(1 + exp(x)): 어디서나 미분 가능한 부드러운 ReLU.",
        "swish": "Swish x * sigmoid(x)(Ramachandran 외 2017). silu와 같은 함수.",
        "tanh": "쌍곡탄젠트, 출력은 (-1, 1)이고 0을 중심으로 한다.",
        "thresholded_relu": "Keras의 Thresholded ReLU: x > theta이면 x, 아니면 0.",
    },
    "regularizer": {
        "l1": "L1 페널티 l1 * sum(|x|): 가중치를 정확히 0으로 밀어 희소하게 만든다.",
        "l1l2": "두 페널티를 함께: l1 * sum(|x|) + l2 * sum(x ** 2)(엘라스틱 넷).",
        "l2": "L2 페널티 l2 * sum(x ** 2)(Keras처럼 1/2 없음): 가중치를 줄인다(가중치 감쇠).",
    },
    "loss": {
        "binary_crossentropy": "0/1 타깃과 시그모이드 출력(레이블마다 하나)을 위한 이진 교차 엔트로피.",
        "categorical_crossentropy": "모양 (N, C)의 원-핫 또는 부드러운 타깃을 위한 범주형 교차 엔트로피.",
        "huber": "Huber 손실: 작은 오차에는 mse처럼, delta를 넘으면 mae처럼(기울기가 유계) 동작한다.",
        "kl_divergence": "마지막 축의 분포 사이의 쿨백-라이블러 발산 KL(y_true || y_pred).",
        "mae": "평균 절대 오차 mean(|y_pred - y_true|). 이상치에 강하다.",
        "mean_absolute_error": "mae의 Keras식 긴 이름.",
        "mean_squared_error": "mse의 Keras식 긴 이름.",
        "mse": "평균 제곱 오차 mean((y_pred - y_true)^2). 회귀의 기본 손실.",
        "rmse": "제곱근 평균 제곱 오차: 배치 MSE의 제곱근으로, 타깃과 같은 단위다.",
        "sparse_categorical_crossentropy": "[0, C) 범위의 정수 클래스 레이블 (N,)을 위한 범주형 교차 엔트로피.",
    },
    "metric": {
        "acc": "accuracy의 Keras식 짧은 이름(history 키는 'accuracy').",
        "accuracy": "맞힌 비율. Keras의 \"accuracy\"처럼 해석된다(history 키는 \"accuracy\").",
        "auc": "ROC 곡선 아래 넓이(이진 분류. 다중 클래스는 one-vs-rest 매크로 평균).",
        "binary_accuracy": "(y_pred > threshold)가 0/1 타깃과 같은 출력의 비율(원소별).",
        "categorical_accuracy": "argmax(y_pred) == argmax(원-핫 y_true)인 표본의 비율.",
        "confusion_matrix": "혼동 행렬(리스트의 리스트). 스칼라가 아니라 에폭별 history에는 들어가지 않는다.",
        "ece": "기대 보정 오차: 같은 폭의 신뢰도 구간 num_bins개에서 신뢰도와 정확도의 차이를 평균한다"
               "(history 키는 'ece').",
        "f1": "F1 = 2 tp / (2 tp + fp + fn). average의 기본값은 'binary'.",
        "log_loss": "레이블의 평균 음의 로그 가능도. 레이블 스무딩을 적용하지 않는다(scikit-learn의 log_loss).",
        "mae": "에폭 전체의 평균 절대 오차.",
        "mse": "에폭 전체의 평균 제곱 오차.",
        "nll": "log_loss의 다른 이름(history 키는 'log_loss').",
        "precision": "정밀도 tp / (tp + fp). average의 기본값은 sklearn처럼 'binary'.",
        "r2": "에폭 전체의 결정 계수 R^2(출력들에 대해 균등 평균).",
        "recall": "재현율 tp / (tp + fn). average의 기본값은 sklearn처럼 'binary'.",
        "rmse": "에폭 전체의 제곱근 평균 제곱 오차(Keras처럼 모든 원소의 MSE에 제곱근).",
        "sparse_categorical_accuracy": "argmax(y_pred)가 정수 레이블과 같은 표본의 비율.",
        "top_k_accuracy": "레이블이 점수 상위 k개 클래스 안에 드는 표본의 비율.",
    },
    "layer": {
        "Activation": "이름으로 활성화 함수를 적용한다(Activation(\"relu\")).",
        "AveragePooling2D": "pool_size 창마다 평균을 낸다.",
        "BatchNormalization": "마지막 축에 대한 배치 정규화. Keras 기본값(momentum 0.99, epsilon 1e-3)을 쓴다.",
        "Bidirectional": "순환 층을 앞뒤 양방향으로 돌려 결과를 이어 붙인다(Keras merge_mode='concat').",
        "Conv1D": "(batch, steps, channels) 입력에 대한 1차원 합성곱.",
        "Conv2D": "(batch, height, width, channels) 입력(Keras 배치)에 대한 2차원 합성곱.",
        "Dense": "완전 연결 층. 마지막 축에 작용한다(Keras Dense).",
        "Dropout": "학습 중 입력의 rate 비율을 무작위로 0으로 만든다(역 드롭아웃).",
        "Embedding": "토큰 id(int64)를 벡터로 바꾼다. Keras 기본 초기화는 uniform(-0.05, 0.05).",
        "Flatten": "배치 축을 뺀 모든 축을 펼친다.",
        "GRU": "게이트 순환 유닛(torch의 정식화는 Keras의 reset_after=True와 같다).",
        "GaussianDropout": "Keras GaussianDropout: 학습 중 N(1, rate / (1 - rate)) 잡음을 곱하고 추론 때는 아무것도 "
                           "하지 않는다.",
        "GaussianNoise": "Keras GaussianNoise: 학습 중 N(0, stddev^2) 잡음을 더하고 추론 때는 아무것도 하지 않는다.",
        "GlobalAveragePooling2D": "높이와 너비에 대해 평균: (batch, h, w, c) -> (batch, c).",
        "LSTM": "장단기 메모리 층(Keras 초기화: glorot 커널, 직교 순환 가중치, forget 편향 1).",
        "MaxPooling2D": "pool_size 창마다 최댓값을 취한다.",
        "RandomBrightness": "이미지마다 [-factor, factor] 범위(데이터 단위)의 무작위 값을 더한다. 잘라내지 않는다.",
        "RandomContrast": "Keras RandomContrast: 이미지와 채널마다 (x - mean) * c + mean, c는 [1 - factor, 1 + factor].",
        "RandomCrop": "Keras RandomCrop: 이미지를 (height, width)로 무작위 위치에서 잘라낸다.",
        "RandomFlip": "Keras RandomFlip: mode가 가리키는 축을 따라 확률 1/2로 이미지를 뒤집는다.",
        "RandomRotation": "Keras RandomRotation: [-factor, factor] x 2 pi 범위의 각도로 회전한다.",
        "RandomTranslation": "Keras RandomTranslation: 최대 height_factor x H, width_factor x W 픽셀만큼 이동한다.",
        "RandomZoom": "Keras RandomZoom: 1 + z배(z는 [-height_factor, height_factor])로 확대·축소한다. 양수면 축소.",
        "Reshape": "배치가 아닌 축들을 target_shape로 바꾼다(하나는 -1이어도 된다).",
        "SimpleRNN": "완전 연결 순환 층.",
    },
    "augmentation": {
        "cutmix": "짝 이미지의 무작위 상자를 각 이미지에 붙이고, 타깃은 상자의 넓이 비율로 섞는다.",
        "cutout": "각 이미지의 무작위 중심에 size x size 정사각형을 value로 채운다(DeVries와 Taylor 2017).",
        "gaussian_noise": "학습 배치의 모든 입력값에 N(0, stddev^2) 잡음을 더한다. 타깃은 그대로 둔다.",
        "horizontal_flip": "각 이미지를 확률 1/2로 좌우로 뒤집는다(mode=\"horizontal\"인 RandomFlip).",
        "mixup": "각 표본을 무작위 짝과 섞는다: lambda x_i + (1 - lambda) x_j, 타깃에도 같은 lambda를 쓴다.",
        "random_brightness": "각 이미지의 모든 픽셀에 [-factor, factor] 범위(데이터 단위)의 무작위 값 하나를 더한다.",
        "random_contrast": "이미지와 채널마다 (x - mean) * c + mean, c는 [1 - factor, 1 + factor](Keras RandomContrast).",
        "random_crop": "각 이미지의 가장자리를 padding 픽셀만큼 채운 뒤 원래 크기로 무작위 위치에서 잘라낸다.",
        "random_erasing": "확률 probability로 각 이미지의 무작위 직사각형을 지운다(Zhong 외 2017).",
        "random_flip": "mode가 가리키는 축을 따라 확률 1/2로 각 이미지를 뒤집는다(Keras RandomFlip).",
        "random_rotation": "각 이미지를 [-factor, factor] x 2 pi 범위의 무작위 각도로 회전한다(Keras RandomRotation).",
        "random_translation": "각 이미지를 높이와 너비의 무작위 비율만큼 이동한다(Keras RandomTranslation).",
        "random_zoom": "각 이미지를 1 + z배(z는 [-height_factor, height_factor])로 확대·축소한다(Keras RandomZoom).",
        "signal_jitter": "각 신호의 모든 값에 N(0, stddev^2) 잡음을 더한다.",
        "signal_scale": "각 신호에 [1 - factor, 1 + factor] 범위의 무작위 배율을 곱한다.",
        "signal_shift": "각 신호를 [-max_shift, max_shift] 범위의 무작위 정수 스텝만큼 이동한다.",
    },
    "dataset": {
        "breast_cancer": "유방암 진단: 표본 569개 x 특성 30개, 이진 분류.",
        "diabetes": "당뇨병 진행도: 표본 442개 x 특성 10개(원본, 스케일링 안 됨), 회귀, 타깃 25..346.",
        "digits": "손글씨 숫자: 표본 1797개 x 특성 64개(8x8 픽셀, 원래 값 0..16), 10개 클래스 분류.",
        "digits_images": "번들 digits를 [0, 1] 범위의 8x8x1 이미지로: 표본 1797개, 10개 클래스 분류, 작은 CNN용.",
        "fashion_mnist": "Fashion-MNIST 분류: 학습 60000장 + 테스트 10000장의 28x28 흑백 이미지([0, 1]), 의류 10개 "
                         "클래스(데비안 패키지 dataset-fashion-mnist).",
        "friedman1": "Friedman #1(scikit-learn make_friedman1): [0, 1] 균등분포 특성, 기본 1000개 x 특성 10개, "
                     "표준편차를 아는 가우스 잡음(기본 1)이 더해진 회귀.",
        "iris": "붓꽃: 표본 150개 x 특성 4개, 3개 클래스 분류.",
        "noisy_sine": "잡음 섞인 사인: [-pi, pi] 균등분포 특성 1개, 기본 200개, 회귀 y = sin(x) + 표준편차를 아는 "
                      "가우스 잡음(기본 0.3).",
        "mnist1d": "MNIST-1D 분류: 생성한 신호 5000개 x 40스텝, 10개 클래스(mnist1d 패키지, 다운로드 없음).",
        "sequences": "생성한 토큰 시퀀스(기본 2000개 x 길이 20, 어휘 50), 이진 분류: 토큰 1이 토큰 2보다 먼저 나오는가.",
        "synthetic": "생성한 분류 데이터(scikit-learn make_classification): 기본 1000개 x 특성 20개, 2개 클래스.",
        "wine": "와인 품종: 표본 178개 x 특성 13개, 3개 클래스 분류.",
    },
    "scaler": {
        "minmax": "특성마다 학습 데이터의 범위를 [0, 1]로 옮긴다(상수 특성은 0).",
        "none": "스케일링 없음: 입력을 그대로 쓴다.",
        "standardize": "특성마다 학습 데이터의 평균을 빼고 표준편차로 나눈다(상수 특성은 스케일 1).",
    },
}


def summary(kind: str, name: str, english: str) -> str:
    """The Korean summary of a catalog entry; the English one where none is written yet."""
    return SUMMARIES.get(kind, {}).get(name, english)
