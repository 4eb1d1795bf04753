/**
 * @file What the synthetic catalogue is made of: the colour palette (颜色 values with the RGB
 * the images are painted in), the shapes, and one entry per category with its property set,
 * title words, default shape and product domain. Frozen tables: a new category is one entry.
 *
 * Values never contain `#`, `:`, `;`, TAB or line breaks, so a clean knowledge string always
 * splits back into exactly the pairs that were written.
 */

export type Rgb = readonly [r: number, g: number, b: number];

/** 颜色 values and the colour an item of that colour is painted in. */
export const COLOURS = Object.freeze({
  红色: [214, 32, 38],
  橙色: [240, 128, 24],
  黄色: [236, 204, 28],
  绿色: [36, 150, 64],
  蓝色: [32, 84, 206],
  紫色: [124, 52, 168],
  粉色: [242, 150, 188],
  棕色: [118, 70, 36],
  黑色: [28, 28, 30],
  白色: [246, 246, 244],
  灰色: [128, 128, 128],
} satisfies Record<string, Rgb>);
export type ColourName = keyof typeof COLOURS;
export const COLOUR_NAMES = Object.keys(COLOURS) as ColourName[];

/** Shapes the image painter knows (see image.ts); each is centred and covers the image centre. */
export const SHAPES = [
  'circle',
  'square',
  'wide-rect',
  'heart',
  'dress',
  'tshirt',
  'shoe',
  'backpack',
  'bottle',
  'lamp',
  'phone-case',
  'bowl',
  'umbrella',
] as const;
export type Shape = (typeof SHAPES)[number];

/** 形状 values and the shape they are drawn as. */
export const SHAPE_BY_VALUE = Object.freeze({
  方形: 'square',
  圆形: 'circle',
  长方形: 'wide-rect',
  心形: 'heart',
} satisfies Record<string, Shape>);

export interface Property {
  readonly name: string;
  readonly values: readonly string[];
}

export interface Category {
  /** The category field and the last word of most titles. */
  readonly name: string;
  /** Other words a title may use for the product itself. */
  readonly titleWords: readonly string[];
  /** Shape drawn when the item has no 形状 property. */
  readonly shape: Shape;
  /** Category-specific properties (颜色 and the generic ones are added for every category). */
  readonly properties: readonly Property[];
  /** Words a seller adds after the product word (target group, use). */
  readonly suffixes: readonly string[];
  /** The product domain (industry) the category belongs to: P9D's unit of continual pretraining. */
  readonly domain: string;
}

const p = (name: string, values: string[]): Property => Object.freeze({ name, values: Object.freeze(values) });

export const BRANDS = Object.freeze([
  '暖芯', '木棉记', '简朴家', '青禾', '北辰', '悦途', '星垣', '素言', '拾光', '鹿野', '橙意', '云栖',
  '知竹', '南岸', '初见', '山小舍', '禾木', '朗格',
]);

/** Properties every category may carry, besides 颜色. */
export const GENERIC_PROPERTIES: readonly Property[] = Object.freeze([
  p('品牌', [...BRANDS]),
  p('产地', ['浙江省', '广东省', '江苏省', '福建省', '山东省', '江西省', '河北省', '上海市', '四川省', '湖北省']),
  p('上市时间', ['2023年春季', '2023年秋季', '2024年夏季', '2024年冬季', '2025年春季', '2025年夏季']),
  p('售后服务', ['全国联保', '七天无理由退换', '店铺三包', '退货补运费']),
  p('是否商场同款', ['是', '否']),
  p('包装方式', ['盒装', '袋装', '礼盒装', '简装']),
]);

/** The generic property every catalogue line has: the one the images agree with. */
export const COLOUR_PROPERTY = '颜色';
/** The property that overrides the category's shape. */
export const SHAPE_PROPERTY = '形状';

/**
 * The sample's product domains, in the order continual pretraining visits them: its ten categories
 * grouped as P9D groups products by industry (服饰鞋包 is a P9D industry; 家居用品 here also takes
 * P9D's 家装家饰, and 出行用品 collects bags, phone cases and umbrellas, which P9D spreads over
 * 服饰鞋包, 3C数码 and 运动/户外, so that three domains of similar size remain).
 */
export const DOMAINS = Object.freeze(['服饰鞋包', '家居用品', '出行用品'] as const);

export const CATEGORIES: readonly Category[] = Object.freeze([
  {
    name: '连衣裙',
    domain: '服饰鞋包',
    titleWords: ['连衣裙', '裙子', '长裙', '中长裙'],
    shape: 'dress',
    suffixes: ['女', '女装', '夏', '显瘦'],
    properties: [
      p('材质', ['棉', '雪纺', '真丝', '涤纶', '亚麻', '针织']),
      p('风格', ['韩版', '法式', '复古', '简约', '甜美', '通勤']),
      p('尺码', ['S', 'M', 'L', 'XL', 'XXL']),
      p('袖长', ['短袖', '长袖', '无袖', '七分袖']),
      p('裙长', ['短裙', '中长裙', '长裙']),
      p('领型', ['圆领', 'V领', '方领', '娃娃领']),
      p('图案', ['纯色', '碎花', '条纹', '格子', '波点']),
      p('适用季节', ['春季', '夏季', '秋季']),
      p('适用人群', ['青年女性', '少女', '中年女性']),
    ],
  },
  {
    name: 'T恤',
    domain: '服饰鞋包',
    titleWords: ['T恤', '短袖T恤', '体恤', '上衣'],
    shape: 'tshirt',
    suffixes: ['男', '女', '情侣装', '潮牌'],
    properties: [
      p('材质', ['纯棉', '莫代尔', '涤纶', '冰丝', '棉混纺']),
      p('风格', ['休闲', '街头', '运动', '简约', '日系']),
      p('尺码', ['S', 'M', 'L', 'XL', 'XXL', '3XL']),
      p('袖长', ['短袖', '长袖']),
      p('领型', ['圆领', 'V领', '翻领', '半高领']),
      p('版型', ['宽松', '修身', '常规']),
      p('图案', ['纯色', '字母', '印花', '条纹']),
      p('适用人群', ['男士', '女士', '情侣', '青少年']),
      p('厚薄', ['薄款', '常规', '加厚']),
    ],
  },
  {
    name: '运动鞋',
    domain: '服饰鞋包',
    titleWords: ['运动鞋', '跑步鞋', '休闲鞋', '板鞋'],
    shape: 'shoe',
    suffixes: ['男', '女', '透气', '轻便'],
    properties: [
      p('材质', ['网布', '皮革', '飞织', '帆布', '超纤']),
      p('尺码', ['36', '37', '38', '39', '40', '41', '42', '43', '44']),
      p('风格', ['运动', '休闲', '复古', '潮流']),
      p('功能', ['减震', '透气', '防滑', '耐磨', '轻便']),
      p('闭合方式', ['系带', '套脚', '魔术贴']),
      p('鞋底材质', ['橡胶', 'EVA', '聚氨酯']),
      p('适用场景', ['跑步', '篮球', '日常', '健身']),
      p('适用人群', ['男士', '女士', '青少年', '中老年']),
      p('帮面高度', ['低帮', '中帮', '高帮']),
    ],
  },
  {
    name: '双肩包',
    domain: '出行用品',
    titleWords: ['双肩包', '背包', '书包', '电脑包'],
    shape: 'backpack',
    suffixes: ['男', '女', '大容量', '学生'],
    properties: [
      p('材质', ['尼龙', '帆布', '牛津布', 'PU', '涤纶']),
      p('风格', ['学院', '商务', '休闲', '户外']),
      p('容量', ['15L', '20L', '25L', '30L', '40L']),
      p('闭合方式', ['拉链', '翻盖', '抽绳']),
      p('功能', ['防水', 'USB充电', '防盗', '减负']),
      p('适用人群', ['学生', '上班族', '旅行者']),
      p('内部结构', ['电脑插袋', '证件袋', '手机袋', '夹层拉链袋']),
      p('肩带样式', ['双根', '加宽减压']),
    ],
  },
  {
    name: '保温杯',
    domain: '家居用品',
    titleWords: ['保温杯', '水杯', '焖烧杯', '杯子'],
    shape: 'bottle',
    suffixes: ['男', '女', '大容量', '便携'],
    properties: [
      p('材质', ['304不锈钢', '316不锈钢', '钛', '玻璃内胆']),
      p('容量', ['350ml', '500ml', '600ml', '750ml', '1000ml']),
      p('风格', ['简约', '卡通', '商务', '国潮']),
      p('保温时长', ['6小时', '12小时', '24小时']),
      p('杯盖类型', ['弹盖', '旋盖', '吸管盖']),
      p('适用人群', ['学生', '上班族', '儿童', '老人']),
      p('是否带滤网', ['是', '否']),
    ],
  },
  {
    name: '台灯',
    domain: '家居用品',
    titleWords: ['台灯', '护眼台灯', '床头灯', '书桌灯'],
    shape: 'lamp',
    suffixes: ['卧室', '学生', '宿舍', '护眼'],
    properties: [
      p('材质', ['金属', '塑料', '木质', '陶瓷', '铁艺']),
      p('风格', ['北欧', '现代简约', '中式', '美式', '日式']),
      p('光源类型', ['LED', '节能灯', '白炽灯']),
      p('调光方式', ['触摸调光', '无极调光', '旋钮调光', '不可调光']),
      p('功率', ['5W', '8W', '12W', '15W']),
      p('适用场景', ['卧室', '书房', '宿舍', '客厅']),
      p('开关类型', ['触摸开关', '按钮开关', '遥控开关']),
      p('电源方式', ['插电', '充电', 'USB供电']),
    ],
  },
  {
    name: '手机壳',
    domain: '出行用品',
    titleWords: ['手机壳', '保护套', '手机套'],
    shape: 'phone-case',
    suffixes: ['全包', '防摔', '男', '女'],
    properties: [
      p('材质', ['硅胶', 'TPU', '皮革', '亚克力', '磨砂塑料']),
      p('适用屏幕', ['6.1英寸', '6.3英寸', '6.5英寸', '6.7英寸']),
      p('风格', ['卡通', '简约', '磨砂', '复古', '潮牌']),
      p('功能', ['防摔', '磁吸', '支架', '防指纹']),
      p('包边方式', ['全包', '半包', '无边框']),
      p('图案', ['纯色', '卡通', '文字', '大理石纹']),
      p('适用人群', ['男士', '女士', '学生']),
    ],
  },
  {
    name: '抱枕',
    domain: '家居用品',
    titleWords: ['抱枕', '靠垫', '靠枕', '沙发靠背'],
    shape: 'square',
    suffixes: ['客厅', '沙发', '床头', '办公室'],
    properties: [
      p('形状', Object.keys(SHAPE_BY_VALUE)),
      p('材质', ['棉麻', '天鹅绒', '毛绒', '亚麻', '涤纶']),
      p('尺寸', ['40x40cm', '45x45cm', '50x50cm', '30x50cm']),
      p('风格', ['北欧', '卡通', '简约', '中式', 'ins风']),
      p('填充物', ['PP棉', '羽绒', '荞麦壳', '记忆棉']),
      p('适用场景', ['沙发', '床头', '汽车', '办公室']),
      p('是否可拆洗', ['可拆洗', '不可拆洗']),
      p('图案', ['纯色', '几何', '植物', '动物']),
    ],
  },
  {
    name: '陶瓷碗',
    domain: '家居用品',
    titleWords: ['陶瓷碗', '饭碗', '汤碗', '面碗'],
    shape: 'bowl',
    suffixes: ['家用', '套装', '微波炉可用', '创意'],
    properties: [
      p('材质', ['陶瓷', '骨瓷', '粗陶', '白瓷']),
      p('口径', ['4.5英寸', '5英寸', '6英寸', '8英寸']),
      p('风格', ['日式', '北欧', '中式', '简约']),
      p('工艺', ['釉下彩', '釉中彩', '手绘', '窑变']),
      p('是否可微波', ['是', '否']),
      p('适用场景', ['家用', '餐厅', '酒店']),
      p('件数', ['1件', '2件', '4件', '6件']),
    ],
  },
  {
    name: '雨伞',
    domain: '出行用品',
    titleWords: ['雨伞', '晴雨伞', '折叠伞', '遮阳伞'],
    shape: 'umbrella',
    suffixes: ['男', '女', '自动', '防晒'],
    properties: [
      p('材质', ['碰击布', '黑胶', '涤纶', '尼龙']),
      p('折叠方式', ['三折', '二折', '五折', '直杆']),
      p('风格', ['简约', '卡通', '商务', '小清新']),
      p('功能', ['防紫外线', '防风', '自动开收', '反向收']),
      p('伞骨数', ['8骨', '10骨', '12骨', '16骨']),
      p('适用人群', ['男士', '女士', '儿童', '学生']),
      p('伞面直径', ['95cm', '105cm', '115cm']),
    ],
  },
].map((c) => Object.freeze(c as Category)));

/**
 * Category name to product domain, for every category: the content of the sample's
 * category-to-domain map file.
 */
export function categoryDomains(): Record<string, string> {
  return Object.fromEntries(CATEGORIES.map((c) => [c.name, c.domain]));
}

/** The category's full property list: 颜色, the category's own properties, then the generic ones. */
export function propertiesOf(category: Category): readonly Property[] {
  return [p(COLOUR_PROPERTY, COLOUR_NAMES), ...category.properties, ...GENERIC_PROPERTIES];
}

/** The shape an item is drawn as: its 形状 value when it has one, else the category's. */
export function shapeFor(category: Category, shapeValue?: string): Shape {
  if (shapeValue && shapeValue in SHAPE_BY_VALUE) return SHAPE_BY_VALUE[shapeValue as keyof typeof SHAPE_BY_VALUE];
  return category.shape;
}
